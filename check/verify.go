package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"strings"
	"syscall"

	"github.com/aiodio/aiodio/internal/alignbuf"
	"golang.org/x/sys/unix"
)

func (r *runner) writeBuf(o *opRec) []byte {
	b := alignbuf.Alloc(o.memOff + int(o.n))[o.memOff:]
	fillCells(b, r.salt, o.id, o.off, o.gen)
	return b
}

func (r *runner) readBuf(o *opRec) []byte {
	b := alignbuf.Alloc(o.memOff + int(o.n))[o.memOff:]
	for i := range b {
		b[i] = canary
	}
	return b
}

// handle returns the handle a non-I/O op uses (alternating by op index).
func (fs *fileState) handle(o *opRec) File {
	if o.idx%2 == 0 {
		return fs.direct
	}
	return fs.buffered
}

// execSync runs a synchronous op.
func (r *runner) execSync(o *opRec) {
	fs := r.files[o.slot]
	var err error
	switch o.kind {
	case kDirectWrite, kBufWrite:
		h := fs.buffered
		if o.kind == kDirectWrite {
			h = fs.direct
		}
		b := r.writeBuf(o)
		o.start = r.clock.Add(1)
		n, err := h.WriteAt(b, o.off)
		r.complete(o, b, n, err)
		return
	case kDirectRead, kBufRead:
		h := fs.buffered
		if o.kind == kDirectRead {
			h = fs.direct
		}
		b := r.readBuf(o)
		o.start = r.clock.Add(1)
		n, err := h.ReadAt(b, o.off)
		r.complete(o, b, n, err)
		return
	case kStat, kStatName:
		o.start = r.clock.Add(1)
		var fi iofs.FileInfo
		if o.kind == kStat {
			fi, err = fs.handle(o).Stat()
		} else {
			fi, err = r.t.Stat(fs.name)
		}
		o.done.Store(r.clock.Add(1))
		if err != nil {
			r.opError(o, err)
			return
		}
		r.checkSize(o, fi.Size(), "Stat")
		return
	case kTruncate:
		err = fs.handle(o).Truncate(o.off)
	case kPunch:
		err = fs.handle(o).Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, o.off, o.n)
	case kZeroRange:
		err = fs.handle(o).Fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, o.off, o.n)
	case kAlloc:
		err = fs.handle(o).Fallocate(unix.FALLOC_FL_KEEP_SIZE, o.off, o.n)
	case kSync:
		err = fs.handle(o).Sync()
	case kRemove:
		err = r.t.Remove(fs.name)
	}
	o.err = err
	o.ok = err == nil
	o.done.Store(r.clock.Add(1))
	if err != nil {
		r.opError(o, err)
	}
}

// complete handles the outcome of a read, write or fsync (sync or async).
func (r *runner) complete(o *opRec, buf []byte, n int, err error) {
	o.res, o.err = n, err
	switch {
	case o.kind.isWrite():
		o.ok = err == nil && n == len(buf)
		o.done.Store(r.clock.Add(1))
		if n > 0 {
			r.bytesWritten.Add(int64(min(n, len(buf))))
		}
		switch {
		case o.ok:
		case n == 0 && o.kind.direct() && errors.Is(err, syscall.EBUSY):
			r.busy.Add(1) // allowed by I5: invalidation failed before submission
		case noWaitRefused(o, n, err):
			r.nowait.Add(1) // RWF_NOWAIT: would have waited
		default:
			r.opError(o, fmt.Errorf("wrote %d of %d: %w", n, len(buf), err))
		}
	case o.kind.isRead():
		o.ok = err == nil && n == len(buf)
		o.done.Store(r.clock.Add(1))
		if n < 0 || n > len(buf) {
			r.mismatches.Add(1)
			r.fail(o.slot, o.id, -1, "%v: returned n=%d for a %d-byte buffer", o, n, len(buf))
			return
		}
		switch {
		case noWaitRefused(o, n, err):
			r.nowait.Add(1)
		case err != nil && !errors.Is(err, io.EOF):
			r.opError(o, err)
		case err == nil && n < len(buf) && !o.kind.isAsync():
			r.mismatches.Add(1)
			r.fail(o.slot, o.id, -1, "%v: short read (%d of %d) without an error (io.ReaderAt)", o, n, len(buf))
		case err != nil && n == len(buf):
			r.mismatches.Add(1)
			r.fail(o.slot, o.id, -1, "%v: full read with error %v", o, err)
		}
		r.bytesRead.Add(int64(n))
		r.verifyRead(o, buf, n, err == nil || errors.Is(err, io.EOF)) // a failed read may stop anywhere
	default: // fsync
		o.ok = err == nil
		o.done.Store(r.clock.Add(1))
		if err != nil {
			r.opError(o, err)
		}
	}
}

// sizeBounds returns the sizes the file of slot may have had when an op
// issued at tick start ran: lo is only meaningful when exact is true (no
// truncate in the round).
func (r *runner) sizeBounds(slot int, start int64) (lo, hi int64, exact bool) {
	ri := r.rinfo
	fs := r.files[slot]
	hi = ri.hi[slot]
	if ri.removes != nil && ri.removes[slot] {
		return 0, maxOffset, false // removed during the round: sizes are not checked
	}
	if ri.hasTrunc[slot] {
		return 0, hi, false
	}
	lo = fs.size
	for _, m := range ri.mods[slot] {
		if m.kind.isWrite() {
			if d := m.done.Load(); d != 0 && d < start && m.ok {
				lo = max(lo, m.off+m.n)
			}
		}
	}
	return lo, hi, true
}

// checkSize checks a size seen by a Stat during a round (I8).
func (r *runner) checkSize(o *opRec, size int64, what string) {
	lo, hi, exact := r.sizeBounds(o.slot, o.start)
	if size > hi {
		r.mismatches.Add(1)
		r.fail(o.slot, o.id, -1, "%v: %s size %d is larger than any size the ops issued could make (%d)", o, what, size, hi)
	}
	if exact && size < lo {
		r.mismatches.Add(1)
		r.fail(o.slot, o.id, -1, "%v: %s size %d is behind a completed write ending at %d (I8)", o, what, size, lo)
	}
}

// verifyRead checks a read's data; checkShort: a short read must end at a
// size the file may have had (false when the op gave up with EAGAIN).
func (r *runner) verifyRead(o *opRec, buf []byte, n int, checkShort bool) {
	fs := r.files[o.slot]
	end := o.off + int64(n)
	lo, hi, exact := r.sizeBounds(o.slot, o.start)
	if n > 0 && end > hi {
		r.mismatches.Add(1)
		r.fail(o.slot, o.id, -1, "%v: read returned bytes up to %d, past any size the file had (%d)", o, end, hi)
	}
	if checkShort && exact && n < len(buf) && end < lo {
		r.mismatches.Add(1)
		r.fail(o.slot, o.id, end, "%v: short read ends at %d, the file was at least %d long (I4/I8)", o, end, lo)
	}
	r.verifyCells(fs, r.rinfo.mods[o.slot], o.start, buf[:n], o.off, o.String, nil)
}

// verifyCells checks data read at file offset off of fs. mods are the
// round's content-changing ops on the file (nil when quiescent); start is
// the tick the read was issued at. observe, if set, gets every cell's value.
func (r *runner) verifyCells(fs *fileState, mods []*opRec, start int64, data []byte, off int64, desc func() string, observe func(off int64, val cands)) {
	if len(data)%CellSize != 0 {
		r.mismatches.Add(1)
		r.fail(fs.slot, fs.id, off+int64(len(data)), "%s: %d bytes read, not whole cells: sizes are always multiples of %d", desc(), len(data), CellSize)
		data = data[:len(data)&^(CellSize-1)]
	}
	end := off + int64(len(data))
	reported := false
	var pts []int64
	fs.model.pieces(off, end, func(pOff, pEnd int64, base cands) {
		pts = append(pts[:0], pOff, pEnd)
		for _, m := range mods {
			a, b, _ := m.touch()
			if a > pOff && a < pEnd {
				pts = append(pts, a)
			}
			if b > pOff && b < pEnd {
				pts = append(pts, b)
			}
		}
		slices.Sort(pts)
		pts = slices.Compact(pts)
		for i := 0; i+1 < len(pts); i++ {
			a, b := pts[i], pts[i+1]
			allowed := base
			var extra cands
			var superseded *opRec
			for _, m := range mods {
				ma, mb, val := m.touch()
				if ma < b && mb > a {
					extra = append(extra, val)
					if d := m.done.Load(); d != 0 && d < start && m.ok {
						superseded = m
					}
				}
			}
			if superseded != nil {
				allowed = nil // an op that set these cells completed before the read: the old values are gone
			}
			if len(extra) > 0 {
				allowed = union(allowed, extra)
			}
			for c := a; c < b; c += CellSize {
				cell := data[c-off : c-off+CellSize]
				k, g, fid, foff := decodeCell(cell, r.salt, fs.id, c, r.cfg.Poison)
				r.bytesVerified.Add(CellSize)
				switch {
				case k == cellZero && allowed.has(0), k == cellValid && allowed.has(g):
					if observe != nil {
						observe(c, cands{g})
					}
					continue
				case k == cellPoison:
					r.poison.Add(CellSize)
				case k == cellGarbage:
					if p := poisonBytes(cell, c, r.cfg.Poison); p >= CellSize/2 {
						r.poison.Add(int64(p))
					}
				}
				r.mismatches.Add(1)
				if observe != nil {
					observe(c, allowed) // unknown content: keep what was allowed
				}
				if reported {
					continue
				}
				reported = true
				what := k.String()
				switch k {
				case cellValid:
					what = fmt.Sprintf("data of gen %d (%s)", g, r.genOp(g))
				case cellForeign:
					what = fmt.Sprintf("data of file id %d offset %d gen %d (%s)", fid, foff, g, r.genOp(g))
				case cellGarbage:
					what = fmt.Sprintf("garbage % x", cell)
				}
				why := ""
				if superseded != nil {
					why = fmt.Sprintf(" (%v completed before the read was issued)", superseded)
				}
				var al []string
				for _, g := range allowed {
					if g == 0 {
						al = append(al, "zero")
					} else if len(al) < 4 {
						al = append(al, fmt.Sprintf("gen %d (%s)", g, r.genOp(g)))
					}
				}
				r.fail(fs.slot, fs.id, c, "%s: cell at offset %d holds %s; allowed: %s%s", desc(), c, what, strings.Join(al, ", "), why)
			}
		}
	})
}

// genOp describes the write of generation g.
func (r *runner) genOp(g uint32) string {
	i, ok := slices.BinarySearchFunc(r.byGen, g, func(o *opRec, g uint32) int { return int(o.gen) - int(g) })
	if !ok {
		return "never issued"
	}
	return r.byGen[i].String()
}

// endRound updates the model after a round, at a quiescent point. lost:
// the power was cut after the round (after a Sync before it): any op of
// the round may be lost, so each cell may also keep its value from before.
func (r *runner) endRound(ops []*opRec, lost bool) error {
	ri := r.rinfo
	for _, fs := range r.files {
		if ri.removes != nil && ri.removes[fs.slot] {
			// Removed during the round: its blocks are free (and reused
			// by the others: late writes would show there as foreign
			// data). Create it anew.
			r.closeSlot(fs) // errors: the file is gone (ESTALE) or fine
			if err := r.newIncarnation(fs); err != nil {
				return fmt.Errorf("recreate %s after its removal: %w", fs.name, err)
			}
			continue
		}
		fi, err := fs.direct.Stat()
		if err != nil {
			return fmt.Errorf("stat %s: %w", fs.name, err)
		}
		size := fi.Size()
		if fi2, err := r.t.Stat(fs.name); err != nil {
			return fmt.Errorf("stat %s: %w", fs.name, err)
		} else if fi2.Size() != size {
			r.mismatches.Add(1)
			r.fail(fs.slot, fs.id, -1, "quiescent: File.Stat size %d, Target.Stat size %d", size, fi2.Size())
		}
		lo, hi, exact := r.sizeBounds(fs.slot, r.clock.Load()+1)
		if lost {
			lo = fs.size // synced before the round; only a truncate of the round may lower it
		}
		if size > hi || (exact && size < lo) || size%CellSize != 0 {
			r.mismatches.Add(1)
			r.fail(fs.slot, fs.id, -1, "quiescent after round %d: size %d outside [%d, %d]", ops[0].round, size, lo, hi)
		}
		mods := ri.mods[fs.slot]
		if len(mods) > 0 {
			var pts []int64
			for _, m := range mods {
				a, b, _ := m.touch()
				pts = append(pts, a, b)
			}
			slices.Sort(pts)
			pts = slices.Compact(pts)
			type asg struct {
				a, b int64
				c    cands
			}
			var out []asg
			for i := 0; i+1 < len(pts); i++ {
				a, b := pts[i], pts[i+1]
				var vals cands
				partial, durable := false, false
				for _, m := range mods {
					ma, mb, val := m.touch()
					if ma < b && mb > a {
						vals = append(vals, val)
						if !m.ok || lost {
							partial = true
						}
						if m.ok && m.flags&unix.RWF_DSYNC != 0 {
							durable = true // completed durably: survives the crash (I10)
						}
					}
				}
				if durable {
					partial = false
				}
				if len(vals) == 0 {
					continue
				}
				if !partial {
					out = append(out, asg{a, b, union(nil, vals)})
					continue
				}
				fs.model.pieces(a, b, func(pa, pb int64, base cands) {
					out = append(out, asg{pa, pb, union(base, vals)})
				})
			}
			for _, x := range out {
				fs.model.assign(x.a, x.b, x.c)
			}
		}
		fs.model.assign(size, maxOffset, zeroCands)
		fs.size = size
	}
	return nil
}

// verifyAll syncs every file and reads it whole (direct or buffered),
// checking every cell against the model; the model then holds exactly what
// was read.
func (r *runner) verifyAll(ctx context.Context, what string, direct bool) error {
	r.rinfo = &roundInfo{mods: make([][]*opRec, len(r.files)), hasTrunc: make([]bool, len(r.files)), hi: make([]int64, len(r.files))}
	const chunk = 256 << 10
	buf := alignbuf.Alloc(chunk)
	if err := r.t.Sync(); err != nil {
		r.errs.Add(1)
		r.fail(-1, 0, -1, "%s: target sync: %v", what, err)
	}
	for _, fs := range r.files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fs.buffered.Sync(); err != nil && !r.staleCacheEIO(err) {
			r.errs.Add(1)
			r.fail(fs.slot, fs.id, -1, "%s: sync: %v", what, err)
		}
		fi, err := fs.direct.Stat()
		if err != nil {
			return fmt.Errorf("%s: stat %s: %w", what, fs.name, err)
		}
		if fi.Size() != fs.size {
			r.mismatches.Add(1)
			r.fail(fs.slot, fs.id, -1, "%s: size %d, expected %d", what, fi.Size(), fs.size)
		}
		h := fs.buffered
		if direct {
			h = fs.direct
		}
		var segs []seg
		observe := func(off int64, val cands) {
			if val.equal(zeroCands) {
				return
			}
			if n := len(segs); n > 0 && segs[n-1].end == off && segs[n-1].c.equal(val) {
				segs[n-1].end += CellSize
				return
			}
			segs = append(segs, seg{off, off + CellSize, val})
		}
		for off := int64(0); off < fs.size; off += chunk {
			for i := range buf {
				buf[i] = canary
			}
			n, err := h.ReadAt(buf, off)
			want := int(min(chunk, fs.size-off))
			if n != want || (err != nil && !errors.Is(err, io.EOF)) || (n < chunk && err == nil) {
				r.mismatches.Add(1)
				r.fail(fs.slot, fs.id, off+int64(n), "%s: read of %s at %d returned %d, %v; expected %d bytes (size %d)", what, fs.name, off, n, err, want, fs.size)
			}
			n = max(0, min(n, want))
			r.bytesRead.Add(int64(n))
			desc := func() string { return fmt.Sprintf("%s read of f%d.%d at %d", what, fs.slot, fs.id, off) }
			r.verifyCells(fs, nil, 0, buf[:n], off, desc, observe)
		}
		fs.model.segs = segs
	}
	return nil
}

func (r *runner) report() Report {
	rep := Report{Target: r.t.String(), Seed: r.cfg.Seed, OpCounts: map[string]int{}}
	for _, o := range r.log {
		if o.done.Load() != 0 {
			rep.Ops++
			rep.OpCounts[o.kind.String()]++
		}
	}
	if len(r.log) > 0 {
		rep.Rounds = r.log[len(r.log)-1].round + 1
	}
	rep.BytesWritten = r.bytesWritten.Load()
	rep.BytesRead = r.bytesRead.Load()
	rep.BytesVerified = r.bytesVerified.Load()
	rep.PoisonBytes = r.poison.Load()
	rep.Mismatches = int(r.mismatches.Load())
	rep.Errors = int(r.errs.Load())
	rep.Completions = int(r.completions.Load())
	rep.Busy = int(r.busy.Load())
	rep.Crashes = r.crashes
	rep.NoWait = int(r.nowait.Load())
	rep.Injected = int(r.injected.Load())
	rep.RemovedErrs = int(r.removedErrs.Load())
	rep.StalePageCacheEIO = int(r.staleEIO.Load())
	if c, ok := r.t.(Checker); ok {
		f, err := c.Check()
		if err != nil {
			f = append(f, "check: "+err.Error())
		}
		rep.Findings = f
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.failures {
		rep.Failures = append(rep.Failures, f.msg+r.history(f))
	}
	return rep
}

// history is the short op log of a failure: up to its round, the ops that
// changed the failing cell (marked *) or anything else in its 4 KiB block
// (or, without a place, the file's last ops), oldest first.
func (r *runner) history(f failure) string {
	if f.slot < 0 {
		return ""
	}
	var hist []string
	blk := f.off &^ 4095
	// Rounds in which an op changed the failing cell: every op of the file
	// that changes contents in those rounds is shown (marked ~).
	hot := map[int]bool{}
	for _, o := range r.log {
		if a, b, _ := o.touch(); o.slot == f.slot && o.id == f.id && o.round <= f.round && o.kind.modifies() && f.off >= a && f.off < b {
			hot[o.round] = true
		}
	}
	for _, o := range r.log {
		if o.slot != f.slot || o.id != f.id || o.round > f.round {
			continue
		}
		mark := "  "
		if f.off >= 0 {
			a, b, _ := o.touch()
			switch {
			case o.kind.modifies() && f.off >= a && f.off < b:
				mark = "* "
			case o.kind.isRead() && a < blk+4096 && b > blk:
				mark = "r "
			case o.kind == kStat || o.kind == kStatName || o.kind == kSync || o.kind == kAsyncFsync || o.kind.isRead():
				continue
			case o.kind == kTruncate && o.off < blk+4096 && o.off > blk-4096:
			case o.kind != kTruncate && a < blk+4096 && b > blk:
			case hot[o.round] && o.kind.modifies():
				mark = "~ "
			default:
				continue
			}
		}
		hist = append(hist, mark+o.String())
	}
	if len(hist) > 24 {
		hist = append([]string{fmt.Sprintf("... %d earlier ops", len(hist)-24)}, hist[len(hist)-24:]...)
	}
	where := "its last ops"
	if f.off >= 0 {
		where = fmt.Sprintf("* = changed offset %d; r = read, others = changed its 4 KiB block; ~ = changed the file in the same round as a *", f.off)
	}
	return fmt.Sprintf("\nop log (file slot %d id %d up to round %d; %s; recycles every %d rounds):\n  %s", f.slot, f.id, f.round, where, r.cfg.RecycleEvery, strings.Join(hist, "\n  "))
}

// noWaitRefused reports whether an RWF_NOWAIT op was refused rather than
// failed: EAGAIN (it would have waited; a read may have read part), or
// EOPNOTSUPP with nothing done, which Linux returns before doing anything
// for a file that does not support RWF_NOWAIT at all (a FUSE file).
func noWaitRefused(o *opRec, n int, err error) bool {
	if o.flags&unix.RWF_NOWAIT == 0 {
		return false
	}
	return errors.Is(err, syscall.EAGAIN) || n == 0 && errors.Is(err, syscall.EOPNOTSUPP)
}
