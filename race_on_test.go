//go:build race

package aiodio

const raceEnabled = true
