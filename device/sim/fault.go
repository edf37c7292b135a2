package sim

import (
	"github.com/aiodio/aiodio/device"
)

// Ops is a set of request kinds a fault applies to.
type Ops uint8

// Request kinds for Fault.Ops.
const (
	OpRead Ops = 1 << iota
	OpWrite
	OpFlush
	OpAll = OpRead | OpWrite | OpFlush
)

func opOf(k device.Kind) Ops {
	switch k {
	case device.Read:
		return OpRead
	case device.Write:
		return OpWrite
	case device.Flush:
		return OpFlush
	}
	return 0
}

// Fault describes requests to fail. A request matches when its kind is in
// Ops and, if Len > 0, its byte range overlaps [Off, Off+Len) (a flush has
// no range and matches only faults with Len == 0). Faults are evaluated at
// submission, in submission order, so "the Nth request" is deterministic.
type Fault struct {
	// Ops selects the kinds; 0 means OpAll.
	Ops Ops
	// Off and Len select a device byte range; Len 0 matches any offset.
	Off, Len int64
	// After lets the first After matching requests through.
	After int
	// Count is the number of matching requests to fail after those;
	// 0 means every one.
	Count int
	// Err is the error the failed requests carry besides ErrInjected;
	// nil means syscall.EIO.
	Err error
}

// Injection is an installed Fault.
type Injection struct {
	d     *Device
	f     Fault
	seen  int // matching requests so far; guarded by d.mu
	hits  int // requests failed so far; guarded by d.mu
	alive bool
}

// Inject installs a fault for requests submitted from now on and returns it.
func (d *Device) Inject(f Fault) *Injection {
	if f.Ops == 0 {
		f.Ops = OpAll
	}
	in := &Injection{d: d, f: f, alive: true}
	d.mu.Lock()
	d.mu.faults = append(d.mu.faults, in)
	d.mu.Unlock()
	return in
}

// FailRange fails every later request of the given kinds that overlaps
// [off, off+n) with EIO.
func (d *Device) FailRange(ops Ops, off, n int64) *Injection {
	return d.Inject(Fault{Ops: ops, Off: off, Len: n})
}

// FailAfter lets the next n requests (of any kind) through and fails every
// one after them with EIO.
func (d *Device) FailAfter(n int) *Injection {
	return d.Inject(Fault{After: n})
}

// FailFlush fails every later flush with EIO.
func (d *Device) FailFlush() *Injection {
	return d.Inject(Fault{Ops: OpFlush})
}

// Remove uninstalls the fault; requests already failed by it stay failed.
func (in *Injection) Remove() {
	d := in.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !in.alive {
		return
	}
	in.alive = false
	for i, f := range d.mu.faults {
		if f == in {
			copy(d.mu.faults[i:], d.mu.faults[i+1:])
			d.mu.faults[len(d.mu.faults)-1] = nil
			d.mu.faults = d.mu.faults[:len(d.mu.faults)-1]
			break
		}
	}
}

// Hits returns how many requests the fault has failed.
func (in *Injection) Hits() int {
	in.d.mu.Lock()
	defer in.d.mu.Unlock()
	return in.hits
}

// matchFaultsLocked returns the injected error for p, or nil. Every
// installed fault sees every request; the first that fires wins.
// REQUIRES: d.mu held.
func (d *Device) matchFaultsLocked(p *Pending) error {
	var err error
	for _, in := range d.mu.faults {
		f := &in.f
		if f.Ops&opOf(p.Kind) == 0 {
			continue
		}
		if f.Len > 0 && !p.Overlaps(f.Off, f.Len) {
			continue
		}
		in.seen++
		if in.seen <= f.After || (f.Count > 0 && in.hits >= f.Count) {
			continue
		}
		if err == nil {
			in.hits++
			err = injectedError(p, f.Err)
		}
	}
	if err != nil {
		d.mu.stats.Injected++
	}
	return err
}
