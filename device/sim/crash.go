package sim

import (
	"math/rand/v2"
	"slices"

	"github.com/aiodio/aiodio/device"
)

// CrashOptions choose what a power loss keeps of the volatile state. The zero
// value keeps exactly the durable image: every write not yet made durable
// by a flush is lost.
type CrashOptions struct {
	// Seed seeds the choice of what survives.
	Seed int64
	// KeepUnflushed is the probability, in [0, 1], that a write that
	// completed but was not flushed, or one still in flight, reaches the
	// image whole.
	KeepUnflushed float64
	// TearUnflushed is the probability that such a write is torn instead:
	// each physical block it covers independently gets the new or the old
	// data. KeepUnflushed + TearUnflushed <= 1; the rest of the writes are
	// lost.
	TearUnflushed float64
	// SkipInFlight leaves writes still in flight (held, waiting, ready)
	// out: only completed unflushed writes may survive.
	SkipInFlight bool
	// Observe, when set, is told the fate of every volatile write, in the
	// order they are applied (for a failing crash test's message). It runs
	// with the device locked and must not call the Device.
	Observe func(CrashWrite)
}

// Fate is what a crash did to a volatile write.
type Fate uint8

// Fates of a volatile write.
const (
	Lost Fate = iota
	Kept
	Torn
)

func (f Fate) String() string {
	switch f {
	case Lost:
		return "lost"
	case Kept:
		return "kept"
	case Torn:
		return "torn"
	}
	return "unknown"
}

// CrashWrite describes one volatile write at a crash.
type CrashWrite struct {
	Off int64
	Len int
	// Seq is the write's submission number; InFlight is true when it had
	// not completed.
	Seq      uint64
	InFlight bool
	Fate     Fate
	// NewBlocks lists, for a torn write, the device offsets of the
	// physical blocks (or parts of them) that got the new data.
	NewBlocks []int64
}

// CrashImage returns the image a power loss at this instant could leave on
// the medium: the durable image, plus, in completion order and then in
// submission order for writes still in flight, each volatile write lost,
// kept or torn as o says. The device itself is not affected (a crash
// clone, like Pebble's MemFS.CrashClone).
func (d *Device) CrashImage(o CrashOptions) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.crashImageLocked(o).bytes()
}

// Crash emulates a power loss. It computes the surviving image as
// CrashImage does, then kills d: every request pending on it, held or not,
// completes with an error matching EIO and ErrCrashed, and so does every
// request submitted later (Close still works and must still be called). It
// returns a fresh open Device over the surviving image with d's options,
// except that Hold and HoldIf are cleared, for remount tests; the caller
// closes it. Crashing a crashed device returns a device over the image
// left by the first crash.
func (d *Device) Crash(o CrashOptions) *Device {
	d.mu.Lock()
	img := d.crashLocked(o)
	d.mu.Unlock()
	d.kickCompleter()
	return d.reopen(img)
}

// CrashAfter arranges a power loss at a deterministic point: right after the
// nth request completing from now has moved its data (n <= 0: before the
// next one does), no later request moves data. The returned channel
// (capacity 1) then receives the new Device, as from Crash. The crash point
// is the same for the same seed and submissions, which makes "power cut at
// every point of a workload" tests replayable. A later call replaces an
// earlier one not yet fired. The receiver must Close the new device. On a
// closed device, or if Close drains the device before the crash fires,
// nothing is sent. o.Observe, if set, runs on a sim goroutine.
func (d *Device) CrashAfter(n int, o CrashOptions) <-chan *Device {
	ch := make(chan *Device, 1)
	d.mu.Lock()
	if !d.mu.closed {
		d.mu.crashAt = &crashPlan{at: d.mu.cseq + uint64(max(n, 0)), o: o, ch: ch}
	}
	d.mu.Unlock()
	d.kickCompleter()
	return ch
}

// crashPlan is a CrashAfter waiting to fire.
type crashPlan struct {
	at uint64 // fire when cseq reaches at
	o  CrashOptions
	ch chan *Device
}

// crashLocked computes the surviving image and kills d.
// REQUIRES: d.mu held.
func (d *Device) crashLocked(o CrashOptions) *store {
	m := &d.mu
	img := d.crashImageLocked(o)
	if m.crashed {
		return img
	}
	m.crashed = true
	m.durable = img.clone()
	for _, p := range m.held {
		p.state = stateReady
		m.ready = append(m.ready, p)
	}
	clear(m.held)
	m.held = m.held[:0]
	for _, p := range m.waiting {
		p.state = stateReady
		m.ready = append(m.ready, p)
	}
	clear(m.waiting)
	m.waiting = m.waiting[:0]
	for _, p := range m.ready {
		p.err = crashError(p)
	}
	m.cache = nil
	d.changedLocked()
	return img
}

// reopen returns a new device over img (which it takes) with d's options.
func (d *Device) reopen(img *store) *Device {
	o := d.opts
	o.Hold = false
	o.HoldIf = nil
	nd, err := open(o, img)
	if err != nil {
		panic("sim: reopening a crashed device with its own options failed: " + err.Error())
	}
	return nd
}

// REQUIRES: d.mu held.
func (d *Device) crashImageLocked(o CrashOptions) *store {
	m := &d.mu
	if m.crashed {
		return m.durable.clone()
	}
	img := m.durable.clone()
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0xc4a5_11))
	pbs := int64(d.info.PhysicalBlockSize)
	apply := func(off int64, data []byte, seq uint64, inFlight bool) {
		w := CrashWrite{Off: off, Len: len(data), Seq: seq, InFlight: inFlight}
		x := rng.Float64()
		switch {
		case x < o.KeepUnflushed:
			w.Fate = Kept
			img.writeAt(data, off)
		case x < o.KeepUnflushed+o.TearUnflushed:
			w.Fate = Torn
			end := off + int64(len(data))
			for s := off; s < end; {
				e := min((s/pbs+1)*pbs, end)
				if rng.IntN(2) == 1 {
					img.writeAt(data[s-off:e-off], s)
					if o.Observe != nil {
						w.NewBlocks = append(w.NewBlocks, s)
					}
				}
				s = e
			}
		}
		if o.Observe != nil {
			o.Observe(w)
		}
	}
	for _, e := range m.cache {
		apply(e.off, e.data, e.seq, false)
	}
	if !o.SkipInFlight {
		var fl []*Pending
		for _, list := range [][]*Pending{m.held, m.waiting, m.ready} {
			for _, p := range list {
				if p.Kind == device.Write && p.err == nil && p.Len > 0 {
					fl = append(fl, p)
				}
			}
		}
		slices.SortFunc(fl, func(a, b *Pending) int { return cmpU64(a.Seq, b.Seq) })
		for _, p := range fl {
			data := make([]byte, 0, p.Len)
			forEachBuf(p.Req, func(b []byte) { data = append(data, b...) })
			apply(p.Off, data, p.Seq, true)
		}
	}
	return img
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
