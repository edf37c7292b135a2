//go:build !race

package aiodio

const raceEnabled = false
