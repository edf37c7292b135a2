//go:build race

package alignbuf

// raceEnabled: sync.Pool deliberately drops items under the race detector.
const raceEnabled = true
