package check

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// kind is the kind of one stress op.
type kind uint8

const (
	kAsyncWrite    kind = iota // direct write through the async queue (often extending)
	kAsyncRead                 // direct read through the async queue
	kAsyncBufWrite             // async write on the buffered handle
	kAsyncBufRead              // async read on the buffered handle
	kAsyncFsync                // async fsync
	kDirectWrite               // WriteAt on the O_DIRECT handle
	kDirectRead                // ReadAt on the O_DIRECT handle
	kBufWrite                  // WriteAt on the buffered handle
	kBufRead                   // ReadAt on the buffered handle
	kStat                      // File.Stat
	kStatName                  // Target.Stat
	kTruncate                  // File.Truncate
	kPunch                     // Fallocate(PUNCH_HOLE|KEEP_SIZE)
	kZeroRange                 // Fallocate(ZERO_RANGE|KEEP_SIZE)
	kAlloc                     // Fallocate(KEEP_SIZE): allocation only, also past EOF
	kSync                      // File.Sync
	kRemove                    // Target.Remove of the file while its ops run; recreated after the round
	numKinds
)

var kindNames = [numKinds]string{"async-write", "async-read", "async-buf-write", "async-buf-read", "async-fsync",
	"direct-write", "direct-read", "buf-write", "buf-read", "stat", "stat-name", "truncate", "punch", "zero-range", "falloc", "sync", "remove"}

// OpKinds returns the names of the op kinds, as Config.Weights and the
// report use them.
func OpKinds() []string { return kindNames[:] }

func (k kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// weights of the kinds in a round (per mille).
var kindWeights = [numKinds]int{
	kAsyncWrite: 200, kAsyncRead: 100, kAsyncBufWrite: 30, kAsyncBufRead: 30, kAsyncFsync: 15,
	kDirectWrite: 80, kDirectRead: 90, kBufWrite: 100, kBufRead: 110,
	kStat: 50, kStatName: 25, kTruncate: 50, kPunch: 50, kZeroRange: 20, kAlloc: 20, kSync: 30,
	kRemove: 4,
}

func (k kind) isWrite() bool {
	return k == kAsyncWrite || k == kAsyncBufWrite || k == kDirectWrite || k == kBufWrite
}

func (k kind) isRead() bool {
	return k == kAsyncRead || k == kAsyncBufRead || k == kDirectRead || k == kBufRead
}

func (k kind) isAsync() bool { return k <= kAsyncFsync }

func (k kind) direct() bool {
	return k == kAsyncWrite || k == kAsyncRead || k == kDirectWrite || k == kDirectRead
}

// modifies: the op changes file contents (writes, truncate, punch, zero).
func (k kind) modifies() bool {
	return k.isWrite() || k == kTruncate || k == kPunch || k == kZeroRange
}

// opRec is one op of the run: generated (deterministically from the seed)
// before its round, executed by a worker, kept for the failure log.
type opRec struct {
	idx    int
	round  int
	kind   kind
	slot   int
	id     uint16 // file incarnation
	off, n int64  // range; truncate: off is the new size
	gen    uint32 // writes: the generation their cells carry
	memOff int    // buffer misalignment
	flags  uint32 // async ops: unix.RWF_NOWAIT, unix.RWF_DSYNC

	// Set by the executing worker before done is stored; read by
	// others only after loading done != 0.
	start int64 // clock tick when issued (reads, stats)
	res   int
	err   error
	ok    bool         // completed fully without error
	done  atomic.Int64 // clock tick when completion was seen; 0: not yet
}

// touch returns the file range the op changes and the value its cells get.
func (o *opRec) touch() (off, end int64, val uint32) {
	switch o.kind {
	case kTruncate:
		return o.off, maxOffset, 0
	case kPunch, kZeroRange:
		return o.off, o.off + o.n, 0
	}
	return o.off, o.off + o.n, o.gen
}

func (o *opRec) String() string {
	s := fmt.Sprintf("#%d r%d f%d.%d %s", o.idx, o.round, o.slot, o.id, o.kind)
	switch {
	case o.kind == kTruncate:
		s += fmt.Sprintf(" size=%d", o.off)
	case o.kind == kStat || o.kind == kStatName || o.kind == kSync || o.kind == kAsyncFsync || o.kind == kRemove:
	default:
		s += fmt.Sprintf(" [%d,%d) len=%d", o.off, o.off+o.n, o.n)
	}
	if o.gen != 0 {
		s += fmt.Sprintf(" gen=%d", o.gen)
	}
	if o.memOff != 0 {
		s += fmt.Sprintf(" mem+%d", o.memOff)
	}
	if o.flags&unix.RWF_NOWAIT != 0 {
		s += " NOWAIT"
	}
	if o.flags&unix.RWF_DSYNC != 0 {
		s += " DSYNC"
	}
	if o.done.Load() == 0 {
		return s + " (not completed)"
	}
	if o.kind.isRead() || o.kind.isWrite() {
		s += fmt.Sprintf(" -> %d", o.res)
	}
	if o.err != nil {
		s += fmt.Sprintf(" err=%v", o.err)
	}
	return s
}

// generator makes the op sequence from the seed alone (never from what
// the target did), so a seed replays the same ops.
type generator struct {
	rng     *rand.Rand
	cfg     *Config
	weights [numKinds]int
	total   [numKinds]int
	nominal []int64 // per slot: the size if the ops ran in order
	unalign bool    // direct I/O may be unaligned
	dioOff  int     // direct offset alignment when aligned
}

func (g *generator) pickKind() kind {
	if g.total[0] == 0 {
		s := 0
		for k := kind(0); k < numKinds; k++ {
			s += g.weights[k]
			g.total[k] = s
		}
	}
	x := g.rng.IntN(g.total[numKinds-1])
	for k := kind(0); k < numKinds; k++ {
		if x < g.total[k] {
			return k
		}
	}
	return kStat
}

func (g *generator) cells(n int64) int64 { return n &^ (CellSize - 1) }

func (g *generator) length() int64 {
	var n int64
	switch x := g.rng.IntN(10); {
	case x < 3:
		n = int64(1+g.rng.IntN(8)) * CellSize
	case x < 6:
		n = int64(1+g.rng.IntN(8)) * 512
	case x < 9:
		n = int64(1+g.rng.IntN(8)) * 4096
	default:
		n = g.cells(int64(1 + g.rng.IntN(g.cfg.MaxIO)))
	}
	return max(CellSize, min(n, int64(g.cfg.MaxIO)))
}

func (g *generator) offsetIn(limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	off := g.cells(g.rng.Int64N(limit))
	switch g.rng.IntN(4) {
	case 0:
		off &^= 511
	case 1:
		off &^= 4095
	}
	return off
}

// ioRange picks a range for a read or write of slot.
func (g *generator) ioRange(slot int, write, direct bool) (off, n int64) {
	nom, maxSize := g.nominal[slot], g.cfg.MaxFileSize
	n = g.length()
	switch x := g.rng.IntN(20); {
	case write && x < 8: // extend: at EOF, or past it leaving a gap
		off = nom
		if g.rng.IntN(2) == 0 {
			off += g.cells(g.rng.Int64N(16 << 10))
		}
	case x < 17:
		off = g.offsetIn(nom + 4096)
	default:
		off = g.offsetIn(maxSize)
	}
	if direct && (!g.unalign || g.rng.IntN(2) == 0) {
		// Aligned direct I/O: to the device sector (sub-page: shares
		// pages with buffered I/O) or to 4 KiB.
		a := int64(g.dioOff)
		if g.rng.IntN(2) == 0 {
			a = max(a, 4096)
		}
		off = off / a * a
		n = max(a, (n+a-1)/a*a)
	}
	if off+n > maxSize {
		off = max(0, (maxSize-n)&^4095)
	}
	return off, n
}

// next generates op idx of round for slot with file id.
func (g *generator) next(idx, round, slot int, id uint16, gen *uint32) *opRec {
	k := g.pickKind()
	o := &opRec{idx: idx, round: round, kind: k, slot: slot, id: id}
	nom := g.nominal[slot]
	switch {
	case k.isWrite() || k.isRead():
		o.off, o.n = g.ioRange(slot, k.isWrite(), k.direct())
		if (!k.direct() || g.unalign) && g.rng.IntN(3) == 0 {
			o.memOff = CellSize * (1 + g.rng.IntN(255))
		}
		if k.isAsync() {
			switch x := g.rng.IntN(20); {
			case x < 3:
				o.flags = unix.RWF_NOWAIT
			case x < 6 && k.isWrite():
				o.flags = unix.RWF_DSYNC
			}
		}
		if k.isWrite() {
			*gen++
			o.gen = *gen
			g.nominal[slot] = max(nom, o.off+o.n)
		}
	case k == kTruncate:
		switch x := g.rng.IntN(10); {
		case x < 5:
			o.off = max(0, nom-g.cells(g.rng.Int64N(64<<10)))
		case x < 8:
			o.off = nom + g.cells(g.rng.Int64N(64<<10))
		default:
			o.off = g.cells(g.rng.Int64N(g.cfg.MaxFileSize))
		}
		o.off = min(o.off, g.cfg.MaxFileSize)
		g.nominal[slot] = o.off
	case k == kRemove:
		g.nominal[slot] = 0 // recreated empty after the round
	case k == kPunch || k == kZeroRange || k == kAlloc:
		o.off = g.offsetIn(nom + 4096)
		o.n = g.length()
		if k == kAlloc && g.rng.IntN(2) == 0 {
			o.off = nom + g.cells(g.rng.Int64N(8<<10)) // past EOF, keep size
		}
		if o.off+o.n > g.cfg.MaxFileSize {
			o.off = max(0, g.cfg.MaxFileSize-o.n)
		}
	}
	return o
}
