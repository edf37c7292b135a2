//go:build !race

package dio

const raceEnabled = false
