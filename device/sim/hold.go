package sim

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/device"
)

type pendingState uint8

const (
	stateHeld pendingState = iota + 1
	stateWaiting
	stateReady
	stateDone
)

// Pending is a request accepted by the device and not yet completed, as the
// hold controls see it. Kind, Off, Len and Seq are copies taken at
// submission and stay valid forever; Req is the caller's request and may be
// read only until the request completes (after that it belongs to the
// caller again).
type Pending struct {
	Req  *device.Request
	Kind device.Kind
	// Off and Len are the device byte range (0, 0 for a flush).
	Off int64
	Len int
	// Seq is the submission sequence number: 1 for the device's first
	// accepted request.
	Seq uint64

	completed chan struct{}

	// Guarded by Device.mu.
	state     pendingState
	err       error // error to complete with (fault, Fail, crash)
	due       time.Time
	flushUpTo uint64 // for a flush: the write generation at submission
	n         int
	cseq      uint64
}

// Completed returns a channel closed after the request's Done has returned.
func (p *Pending) Completed() <-chan struct{} { return p.completed }

// Overlaps reports whether the request's byte range overlaps [off, off+n).
// A flush overlaps nothing.
func (p *Pending) Overlaps(off, n int64) bool {
	return p.Len > 0 && n > 0 && p.Off < off+n && off < p.Off+int64(p.Len)
}

func (p *Pending) String() string {
	if p.Kind == device.Flush {
		return fmt.Sprintf("flush#%d", p.Seq)
	}
	return fmt.Sprintf("%v#%d[%d,+%d)", p.Kind, p.Seq, p.Off, p.Len)
}

// SetHold turns holding of every later submitted request on or off. Turning
// it off does not release requests already held.
func (d *Device) SetHold(on bool) {
	d.mu.Lock()
	d.mu.holdAll = on
	d.mu.Unlock()
}

// HoldIf makes the device hold every later submitted request f returns true
// for (in addition to SetHold); nil holds nothing by predicate. f runs in
// Submit, before the request is accepted, and must not call the Device.
func (d *Device) HoldIf(f func(*device.Request) bool) {
	if f == nil {
		d.holdIf.Store(nil)
		return
	}
	d.holdIf.Store(&f)
}

// Held returns the held requests in submission order.
func (d *Device) Held() []*Pending {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*Pending(nil), d.mu.held...)
}

// WaitHeld blocks until at least n requests are held and returns them (in
// submission order), or returns ctx's error.
func (d *Device) WaitHeld(ctx context.Context, n int) ([]*Pending, error) {
	for {
		d.mu.Lock()
		if len(d.mu.held) >= n {
			h := append([]*Pending(nil), d.mu.held...)
			d.mu.Unlock()
			return h, nil
		}
		ch := d.mu.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("sim: waiting for %d held requests: %w", n, ctx.Err())
		}
	}
}

// WaitFor blocks until a held request satisfies match and returns the first
// such one (in submission order), or returns ctx's error. match must not
// call the Device.
func (d *Device) WaitFor(ctx context.Context, match func(*Pending) bool) (*Pending, error) {
	for {
		d.mu.Lock()
		h := append([]*Pending(nil), d.mu.held...)
		ch := d.mu.changed
		d.mu.Unlock()
		for _, p := range h {
			if match(p) {
				return p, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("sim: waiting for a held request: %w", ctx.Err())
		}
	}
}

// Release lets a held request complete (after Latency, in the device's
// completion order among the ready ones). It fails with EINVAL if p is not
// held.
func (d *Device) Release(p *Pending) error {
	d.mu.Lock()
	err := d.releaseLocked(p)
	d.mu.Unlock()
	d.kickCompleter()
	return err
}

// ReleaseAll lets every held request complete; they become ready together,
// so they complete in the seeded order (or submission order with
// Options.Ordered).
func (d *Device) ReleaseAll() {
	d.mu.Lock()
	d.releaseAllLocked()
	d.mu.Unlock()
	d.kickCompleter()
}

// Fail completes a held request with an error matching ErrInjected and err
// (syscall.EIO when err is nil); no data moves. It fails with EINVAL if p
// is not held.
func (d *Device) Fail(p *Pending, err error) error {
	d.mu.Lock()
	if p.state == stateHeld && !d.mu.crashed {
		p.err = injectedError(p, err)
		d.mu.stats.Injected++
	}
	rerr := d.releaseLocked(p)
	d.mu.Unlock()
	d.kickCompleter()
	return rerr
}

// REQUIRES: d.mu held.
func (d *Device) releaseLocked(p *Pending) error {
	if p == nil || p.state != stateHeld {
		return fmt.Errorf("sim: release %v: request is not held: %w", p, syscall.EINVAL)
	}
	for i, q := range d.mu.held {
		if q == p {
			d.mu.held = removeAt(d.mu.held, i)
			break
		}
	}
	d.enqueueLocked(p)
	d.changedLocked()
	return nil
}

// REQUIRES: d.mu held.
func (d *Device) releaseAllLocked() {
	if len(d.mu.held) == 0 {
		return
	}
	for _, p := range d.mu.held {
		d.enqueueLocked(p)
	}
	clear(d.mu.held)
	d.mu.held = d.mu.held[:0]
	d.changedLocked()
}
