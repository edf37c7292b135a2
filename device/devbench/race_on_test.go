//go:build race

package devbench

const raceEnabled = true
