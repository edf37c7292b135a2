package sim

import (
	"github.com/aiodio/aiodio/device"
)

// LogEntry records one completed request.
type LogEntry struct {
	Kind device.Kind
	// Off and Len are the device byte range (0, 0 for a flush).
	Off int64
	Len int
	// SubmitSeq and CompleteSeq number the request among the device's
	// submissions and completions (both from 1).
	SubmitSeq, CompleteSeq uint64
	// Err is the error the request completed with.
	Err error
}

// Stats are the device's counters since it was created.
type Stats struct {
	Submitted, Completed, Rejected uint64
	// Reads, Writes and Flushes count successful requests.
	Reads, Writes, Flushes  uint64
	BytesRead, BytesWritten uint64
	// Errors counts requests completed with an error; Injected those
	// failed by a fault or Fail.
	Errors, Injected uint64
	// Held counts requests that were held at submission.
	Held uint64
}

// InFlight returns the number of accepted requests whose data has not moved
// yet (held, waiting or ready).
func (d *Device) InFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.inFlight
}

// PeakInFlight returns the largest InFlight seen since the device was
// created or ResetPeak was called. Without holding, requests may complete
// before the next is submitted; hold them (WaitHeld) to make concurrency
// observable deterministically.
func (d *Device) PeakInFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.peak
}

// ResetPeak sets PeakInFlight to the current InFlight.
func (d *Device) ResetPeak() {
	d.mu.Lock()
	d.mu.peak = d.mu.inFlight
	d.mu.Unlock()
}

// Log returns the completion log, oldest first (bounded by Options.LogLimit).
func (d *Device) Log() []LogEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]LogEntry(nil), d.mu.log...)
}

// ClearLog empties the completion log.
func (d *Device) ClearLog() {
	d.mu.Lock()
	clear(d.mu.log)
	d.mu.log = d.mu.log[:0]
	d.mu.Unlock()
}

// Stats returns the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.stats
}

// Unflushed returns the number of completed writes not yet durable.
func (d *Device) Unflushed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mu.cache)
}

// clip bounds [off, off+n) to the device.
func (d *Device) clip(off int64, n int) (int64, int64) {
	size := d.info.Size
	if off < 0 {
		off = 0
	}
	if off > size {
		off = size
	}
	end := off + int64(max(n, 0))
	if end > size || end < off {
		end = size
	}
	return off, end
}

// ReadRaw returns a copy of n bytes of the medium at off, as reads see it
// now (completed writes included, flushed or not); the range is clipped to
// the device.
func (d *Device) ReadRaw(off int64, n int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, e := d.clip(off, n)
	b := make([]byte, e-s)
	d.mu.medium.readAt(b, s)
	return b
}

// Image returns a copy of the whole medium as reads see it now.
func (d *Device) Image() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.medium.bytes()
}

// DurableImage returns a copy of what is durable: what a crash that keeps
// nothing unflushed would leave.
func (d *Device) DurableImage() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.durable.bytes()
}

// Find returns the offset of the first occurrence of marker on the medium
// (as reads see it), or -1.
func (d *Device) Find(marker []byte) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(marker) == 0 {
		return -1
	}
	return d.mu.medium.find(marker)
}

// WriteRaw stores p on the medium at off, durably and at once, bypassing
// the request path (clipped to the device). It is meant for preparing the
// medium while no request is in flight; unflushed cached writes over the
// range would still overwrite it when flushed.
func (d *Device) WriteRaw(off int64, p []byte) {
	end := off + int64(len(p))
	if off < 0 {
		p = p[min(-off, int64(len(p))):]
		off = 0
	}
	end = min(end, d.info.Size)
	if off >= end {
		return
	}
	p = p[:end-off]
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.medium.writeAt(p, off)
	d.mu.durable.writeAt(p, off)
}

// Fill sets every byte of the medium, durably, to b and drops the write
// cache. Meant for use while no request is in flight.
func (d *Device) Fill(b byte) { d.Poison([]byte{b}) }

// Poison fills the whole medium, durably, with marker repeated back to back
// and drops the write cache, so that a later read of data nobody wrote
// shows the marker (find it with Find or bytes.Contains). Meant for use
// while no request is in flight; an empty marker fills with zeros.
func (d *Device) Poison(marker []byte) {
	if len(marker) == 0 {
		marker = []byte{0}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.medium.fill(marker)
	d.mu.durable.fill(marker)
	d.mu.cache = nil
}
