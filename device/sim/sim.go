package sim

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/device"
)

// Defaults for zero Options fields.
const (
	DefaultSize       = 8 << 20
	DefaultSectorSize = 512
	DefaultMaxIO      = 1 << 20
	DefaultLogLimit   = 1 << 16
	// MaxSize bounds Options.Size. The medium is sparse (64 KiB chunks
	// allocated when first written), so a large device costs only what
	// is written to it; Image, DurableImage and CrashImage materialize
	// the whole device and suit small ones.
	MaxSize = 1 << 40
)

// Options configure a simulated device. The zero value is a valid 8 MiB
// device with 512-byte sectors that completes requests at once in a seeded
// random order.
type Options struct {
	// Size is the device size in bytes, a multiple of SectorSize
	// (default DefaultSize, or len(Image) when Image is set).
	Size int64
	// SectorSize is the logical block size: the offset and length
	// alignment of reads and writes (default 512).
	SectorSize int
	// PhysicalBlockSize is the unit a crash tears writes in
	// (default SectorSize).
	PhysicalBlockSize int
	// MemAlign is the buffer address alignment (default SectorSize).
	MemAlign int
	// MaxIO is the largest request length accepted (default 1 MiB).
	MaxIO int
	// Seed seeds the completion order and latency jitter.
	Seed int64
	// Ordered completes ready requests in submission order instead of a
	// seeded random order.
	Ordered bool
	// Hold holds every submitted request until the test releases it
	// (see SetHold, HoldIf, Release).
	Hold bool
	// HoldIf, when set, holds the submitted requests it returns true for.
	// It runs in Submit, before the request is accepted, and must not
	// call the Device.
	HoldIf func(*device.Request) bool
	// Latency delays each request's completion by Latency after it is
	// submitted (or released); with LatencyJitter by a uniformly random
	// duration in [0, Latency].
	Latency       time.Duration
	LatencyJitter bool
	// WriteThrough makes every completed write durable at once (no
	// volatile write cache).
	WriteThrough bool
	// Image, when set, is the initial (durable) content of the medium; it
	// is copied. Shorter than Size: the rest is zero.
	Image []byte
	// Completers is the number of goroutines that complete requests and
	// run Done callbacks (default 1). With 1, completions and Done calls
	// are serialized and seed-deterministic; with more, Done callbacks run
	// concurrently, as on a thread-pool engine, and their order is not.
	Completers int
	// Scribble, when set, is written (repeated) into the buffers of a read
	// that fails: a failed transfer may have moved some data, and a caller
	// must not use it. Nil leaves them untouched.
	Scribble []byte
	// LogLimit bounds the completion log (default DefaultLogLimit; the
	// oldest entries are dropped first; negative disables the log).
	LogLimit int
}

// Device is a simulated block device. It implements device.Device; its other
// methods are the test controls described in the package documentation. All
// methods are safe for concurrent use.
type Device struct {
	info   device.Info
	opts   Options
	holdIf atomic.Pointer[func(*device.Request) bool]

	// kick wakes the completer after a state change (capacity 1).
	kick chan struct{}
	// stop is closed by Close once every accepted request has completed.
	stop     chan struct{}
	stopOnce sync.Once
	// completers counts the running completer goroutines.
	completers sync.WaitGroup

	// mu protects every field of the struct it heads. It is never held
	// while a Done callback or a HoldIf predicate runs.
	mu struct {
		sync.Mutex
		closed  bool
		crashed bool
		holdAll bool
		// seq counts accepted requests; cseq counts completions; wseq
		// counts completed writes (the write cache generation).
		seq, cseq, wseq uint64
		// active maps every accepted request not yet transferred to
		// its Pending (catches double submission).
		active map[*device.Request]*Pending
		// held, ready and waiting hold the pending requests by state,
		// each in the order they entered it.
		held, ready, waiting []*Pending
		// outstanding counts accepted requests whose Done has not returned.
		outstanding int
		// inFlight counts accepted requests not yet transferred.
		inFlight, peak int
		// medium is what reads see; durable what survives a crash (after
		// a crash: the surviving image); cache the completed writes not
		// yet flushed, oldest first.
		medium, durable *store
		cache           []cacheEntry
		faults          []*Injection
		// crashAt is a pending CrashAfter.
		crashAt *crashPlan
		log     []LogEntry
		stats   Stats
		rng     *rand.Rand
		// changed is closed and replaced on every change a waiter may
		// look for (held set, outstanding count).
		changed chan struct{}
	}
}

var _ device.Device = (*Device)(nil)

type cacheEntry struct {
	off  int64
	wseq uint64 // completion number among writes
	seq  uint64 // submission number
	data []byte
}

// New returns an open simulated device. It panics if the options are
// invalid (a bug in the test that calls it); Open returns the error instead.
func New(o Options) *Device {
	d, err := Open(o)
	if err != nil {
		panic(err)
	}
	return d
}

// Open returns an open simulated device, or an error wrapping EINVAL when
// the options are invalid.
func Open(o Options) (*Device, error) { return open(o, nil) }

// open opens a device; img, when not nil, is its durable image (of o.Size
// bytes; o.Image is then ignored) and becomes the device's.
func open(o Options, img *store) (*Device, error) {
	if o.SectorSize == 0 {
		o.SectorSize = DefaultSectorSize
	}
	if o.PhysicalBlockSize == 0 {
		o.PhysicalBlockSize = o.SectorSize
	}
	if o.MemAlign == 0 {
		o.MemAlign = o.SectorSize
	}
	if o.MaxIO == 0 {
		o.MaxIO = DefaultMaxIO
	}
	if o.Size == 0 {
		o.Size = DefaultSize
		if o.Image != nil {
			o.Size = int64(len(o.Image))
		}
	}
	if o.Completers == 0 {
		o.Completers = 1
	}
	if o.Completers < 0 || o.Completers > 64 {
		return nil, fmt.Errorf("sim: Completers %d is outside [1, 64]: %w", o.Completers, syscall.EINVAL)
	}
	if o.LogLimit == 0 {
		o.LogLimit = DefaultLogLimit
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"SectorSize", o.SectorSize}, {"PhysicalBlockSize", o.PhysicalBlockSize}, {"MemAlign", o.MemAlign}} {
		if c.v < 1 || bits.OnesCount(uint(c.v)) != 1 {
			return nil, fmt.Errorf("sim: %s %d is not a power of two: %w", c.name, c.v, syscall.EINVAL)
		}
	}
	if o.PhysicalBlockSize < o.SectorSize {
		return nil, fmt.Errorf("sim: PhysicalBlockSize %d is smaller than SectorSize %d: %w",
			o.PhysicalBlockSize, o.SectorSize, syscall.EINVAL)
	}
	if o.MaxIO < o.SectorSize || o.MaxIO%o.SectorSize != 0 {
		return nil, fmt.Errorf("sim: MaxIO %d is not a positive multiple of SectorSize %d: %w",
			o.MaxIO, o.SectorSize, syscall.EINVAL)
	}
	if o.Size < 0 || o.Size > MaxSize {
		return nil, fmt.Errorf("sim: Size %d is outside [0, %d] : %w",
			o.Size, int64(MaxSize), syscall.EINVAL)
	}
	if o.Size%int64(o.SectorSize) != 0 || o.Size%int64(o.PhysicalBlockSize) != 0 {
		return nil, fmt.Errorf("sim: Size %d is not a multiple of the sector and physical block sizes: %w",
			o.Size, syscall.EINVAL)
	}
	if int64(len(o.Image)) > o.Size {
		return nil, fmt.Errorf("sim: Image of %d bytes exceeds Size %d: %w", len(o.Image), o.Size, syscall.EINVAL)
	}
	if o.Latency < 0 {
		return nil, fmt.Errorf("sim: negative Latency %v: %w", o.Latency, syscall.EINVAL)
	}
	d := &Device{
		info: device.Info{
			Size:              o.Size,
			LogicalBlockSize:  o.SectorSize,
			PhysicalBlockSize: o.PhysicalBlockSize,
			MemAlign:          o.MemAlign,
			MaxIO:             o.MaxIO,
			Engine:            "sim",
		},
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	if o.HoldIf != nil {
		f := o.HoldIf
		d.holdIf.Store(&f)
	}
	m := &d.mu
	m.holdAll = o.Hold
	m.active = make(map[*device.Request]*Pending)
	if img == nil {
		img = newStore(o.Size)
		img.load(o.Image)
	}
	m.durable = img
	m.medium = img.clone()
	o.Image = nil
	d.opts = o
	m.rng = rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed_a10d_10))
	m.changed = make(chan struct{})
	d.completers.Add(o.Completers)
	for range o.Completers {
		go d.run()
	}
	return d, nil
}

// Info returns the device's geometry; Engine is "sim".
func (d *Device) Info() device.Info { return d.info }

// Options returns the options the device was created with, defaults filled
// in (Image is nil).
func (d *Device) Options() Options { return d.opts }

// Submit validates and accepts requests, in order. Like Linux O_DIRECT it
// rejects with an error wrapping EINVAL (naming the required alignment or
// bound) a request whose offset or any buffer's length is not a multiple of
// the sector size, whose buffer address is not MemAlign-aligned, that is
// longer than MaxIO or reaches past the end of the device, that names more
// than device.MaxVecs buffers, has no Done or an unknown Kind (the rules of
// device.Check), or that is already in flight. After Close it fails with an
// error matching EBADF. Requests before the rejected one stay accepted.
// After Crash, requests are accepted and fail with EIO. Done is never
// called from inside Submit.
func (d *Device) Submit(reqs ...*device.Request) (int, error) {
	if len(reqs) == 0 {
		return 0, nil
	}
	// Evaluate the hold predicate before taking the lock: it is user code.
	var holdBuf [16]bool
	holds := holdBuf[:0]
	if len(reqs) > len(holdBuf) {
		holds = make([]bool, 0, len(reqs))
	}
	if f := d.holdIf.Load(); f != nil {
		for _, r := range reqs {
			if r == nil || d.check(r) != nil {
				break
			}
			holds = append(holds, (*f)(r))
		}
	}
	d.mu.Lock()
	defer d.kickCompleter()
	defer d.mu.Unlock()
	if d.mu.closed {
		d.mu.stats.Rejected++
		return 0, fmt.Errorf("sim: submit: %w", device.ErrClosed)
	}
	for i, r := range reqs {
		err := d.check(r)
		if err == nil && d.mu.active[r] != nil {
			err = fmt.Errorf("sim: %v at offset %d: request is already in flight: %w", r.Kind, r.Off, syscall.EINVAL)
		}
		if err != nil {
			d.mu.stats.Rejected++
			return i, err
		}
		hold := d.mu.holdAll || (i < len(holds) && holds[i])
		d.acceptLocked(r, hold)
	}
	return len(reqs), nil
}

// check validates r with the rules every engine shares (device.Check):
// Linux O_DIRECT alignment and range rules.
func (d *Device) check(r *device.Request) error {
	if err := device.Check(d.info, r); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// acceptLocked registers a validated request.
// REQUIRES: d.mu held.
func (d *Device) acceptLocked(r *device.Request, hold bool) {
	m := &d.mu
	m.seq++
	p := &Pending{
		Req:       r,
		Kind:      r.Kind,
		Off:       r.Off,
		Len:       r.Len(),
		Seq:       m.seq,
		completed: make(chan struct{}),
	}
	if p.Kind == device.Flush {
		p.Off, p.Len = 0, 0
		p.flushUpTo = m.wseq
	}
	m.active[r] = p
	m.outstanding++
	m.inFlight++
	if m.inFlight > m.peak {
		m.peak = m.inFlight
	}
	m.stats.Submitted++
	if m.crashed {
		p.err = crashError(p)
		d.enqueueLocked(p)
		return
	}
	p.err = d.matchFaultsLocked(p)
	if hold {
		p.state = stateHeld
		m.held = append(m.held, p)
		m.stats.Held++
		d.changedLocked()
		return
	}
	d.enqueueLocked(p)
}

// enqueueLocked makes p ready, or waiting for its latency to elapse.
// REQUIRES: d.mu held.
func (d *Device) enqueueLocked(p *Pending) {
	lat := d.opts.Latency
	if lat > 0 && d.opts.LatencyJitter {
		lat = time.Duration(d.mu.rng.Int64N(int64(lat) + 1))
	}
	if lat > 0 && !d.mu.crashed {
		p.state = stateWaiting
		p.due = time.Now().Add(lat)
		d.mu.waiting = append(d.mu.waiting, p)
		return
	}
	p.state = stateReady
	d.mu.ready = append(d.mu.ready, p)
}

// changedLocked wakes every waiter of WaitHeld, WaitFor and Close.
// REQUIRES: d.mu held.
func (d *Device) changedLocked() {
	close(d.mu.changed)
	d.mu.changed = make(chan struct{})
}

func (d *Device) kickCompleter() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Close stops accepting requests (later Submits fail with EBADF), releases
// every held request, waits until every accepted request has completed and
// its Done has returned, and stops the sim goroutine. It is idempotent and
// must not be called from a Done callback. The medium stays readable
// through ReadRaw, Image and DurableImage.
func (d *Device) Close() error {
	d.mu.Lock()
	if !d.mu.closed {
		d.mu.closed = true
		d.releaseAllLocked()
	}
	for d.mu.outstanding > 0 {
		ch := d.mu.changed
		d.mu.Unlock()
		d.kickCompleter()
		<-ch
		d.mu.Lock()
	}
	d.mu.crashAt = nil // drained: a pending CrashAfter can no longer fire
	d.mu.Unlock()
	d.stopOnce.Do(func() { close(d.stop) })
	d.completers.Wait()
	return nil
}

// ErrInjected labels every error the sim injects (Inject, Fail): tests can
// tell injected failures from real ones with errors.Is(err, ErrInjected).
var ErrInjected = errors.New("sim: injected fault")

// ErrCrashed labels the errors of requests that were pending on, or
// submitted to, a device after its Crash. Such errors also match EIO.
var ErrCrashed = errors.New("sim: device crashed")

// InjectedError is the error of a request failed by the sim. It matches
// ErrInjected (or ErrCrashed) and its Err (syscall.EIO unless a fault asked
// for another error).
type InjectedError struct {
	Kind  device.Kind
	Off   int64
	Len   int
	Seq   uint64
	Label error // ErrInjected or ErrCrashed
	Err   error
}

func (e *InjectedError) Error() string {
	what := "injected error"
	if e.Label == ErrCrashed {
		what = "device crashed"
	}
	if e.Kind == device.Flush {
		return fmt.Sprintf("sim: %s on flush #%d: %v", what, e.Seq, e.Err)
	}
	return fmt.Sprintf("sim: %s on %v #%d at [%d, +%d): %v", what, e.Kind, e.Seq, e.Off, e.Len, e.Err)
}

// Unwrap returns the label and the errno-bearing error.
func (e *InjectedError) Unwrap() []error { return []error{e.Label, e.Err} }

func injectedError(p *Pending, err error) error {
	if err == nil {
		err = syscall.EIO
	}
	return &InjectedError{Kind: p.Kind, Off: p.Off, Len: p.Len, Seq: p.Seq, Label: ErrInjected, Err: err}
}

func crashError(p *Pending) error {
	return &InjectedError{Kind: p.Kind, Off: p.Off, Len: p.Len, Seq: p.Seq, Label: ErrCrashed, Err: syscall.EIO}
}
