package check

// NewAsync returns the volume's async queue. Until aiodio.Ring is available
// it is a goroutine queue over the files' synchronous calls.
func (t *VolumeTarget) NewAsync(entries int) (Async, error) {
	return newGoAsync(entries), nil
}
