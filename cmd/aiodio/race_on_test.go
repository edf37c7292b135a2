//go:build race

package main

// raceEnabled: the race detector allocates on its own; allocation counts are
// only asserted without it.
const raceEnabled = true
