//go:build race

package dio

// raceEnabled: sync.Pool drops entries at random under -race, so allocation
// counts are only asserted without it.
const raceEnabled = true
