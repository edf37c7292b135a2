//go:build !race

package alignbuf

const raceEnabled = false
