package dio

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/lock"
	"github.com/aiodio/aiodio/internal/meta"
)

var errShort = fmt.Errorf("dio: short device transfer: %w", syscall.EIO)

func opCtx(op *Op) context.Context {
	if op.Ctx != nil {
		return op.Ctx
	}
	return context.Background()
}

func (e *Engine) validate(op *Op, what string) error {
	if op == nil || op.Inode == nil || op.Done == nil {
		return fmt.Errorf("dio: %s: op without inode or Done: %w", what, syscall.EINVAL)
	}
	n := int64(len(op.Buf))
	if op.Off < 0 || op.Off+n < op.Off {
		return fmt.Errorf("dio: %s ino %d: offset %d length %d: %w", what, op.Inode.Ino, op.Off, n, syscall.EINVAL)
	}
	if e.o.StrictAlignment {
		if op.Off%int64(e.ss) != 0 || n%int64(e.ss) != 0 {
			return fmt.Errorf("dio: %s ino %d: offset %d length %d not multiples of the %d-byte sector: %w",
				what, op.Inode.Ino, op.Off, n, e.ss, syscall.EINVAL)
		}
		if !alignbuf.IsAligned(op.Buf, e.memAlign) {
			return fmt.Errorf("dio: %s ino %d: buffer address not %d-byte aligned: %w",
				what, op.Inode.Ino, e.memAlign, syscall.EINVAL)
		}
	}
	return nil
}

// needsGap reports whether a write at off must first zero the tail of the
// block holding EOF (bytes past size left there by a truncate or a shorter
// write, which the write would bring inside the file; meta.Truncate leaves
// them to the caller). Such writes take the inode lock exclusive and drain.
func (e *Engine) needsGap(off, size int64) bool {
	return off > size && size&int64(e.bs-1) != 0
}

// Write starts a direct write of op.Buf at op.Off (DESIGN §6). See Op for
// the ownership and completion rules. A nil return means Done will be
// called exactly once; an error means the op was rejected and nothing
// reached the device (bad arguments, EAGAIN under NoWait, a cache
// write-back or invalidation failure (I5, seed 004), ENOSPC, a cancelled
// ctx).
func (e *Engine) Write(op *Op) error {
	if err := e.validate(op, "write"); err != nil {
		return err
	}
	if len(op.Buf) == 0 {
		completeEarly(op, 0, nil)
		return nil
	}
	ua := e.o.SerializeUnaligned && (op.Off|int64(len(op.Buf)))&int64(e.bs-1) != 0
	if ua {
		if err := op.Inode.takeUnaligned(opCtx(op), op.Flags&NoWait != 0); err != nil {
			return opErr("write", op, err)
		}
	}
	err := e.write(op, ua)
	if err != nil && ua {
		op.Inode.releaseUnaligned()
	}
	return err
}

// write is Write after validation; ua says whether the op holds its
// inode's SerializeUnaligned slot (then released at completion).
func (e *Engine) write(op *Op, ua bool) error {
	in := op.Inode
	ctx := opCtx(op)
	nowait := op.Flags&NoWait != 0
	off, end := op.Off, op.Off+int64(len(op.Buf))

	// Step 2: the inode lock, exclusive when the write zeroes past EOF or
	// has a partial sector (StrictAlignment false): the read-modify-write
	// of that sector must not race with an overwrite of the same sector,
	// which takes no range lock — neither with one in flight before it
	// (hence the drain) nor with one submitted while its own write of the
	// sector is in flight (hence partial-sector writes keep the lock until
	// their end-I/O: holdLock). XFS likewise takes the inode lock exclusive,
	// drains, and waits for the I/O of unaligned direct writes
	// (IOMAP_DIO_FORCE_WAIT).
	ss := int64(e.ss)
	partial := !e.o.StrictAlignment && (off%ss != 0 || end%ss != 0)
	excl := partial
	var size int64
	for {
		if err := in.Lock.LockMode(ctx, excl, nowait); err != nil {
			return opErr("write", op, err)
		}
		size = in.Size()
		if nowait && e.needsGap(off, size) {
			// Zeroing the EOF block's tail is synchronous device I/O
			// (XFS refuses IOCB_NOWAIT writes that must zero past EOF).
			in.Lock.UnlockMode(excl)
			return opErr("write", op, wouldBlock("the write must zero past end of file first"))
		}
		if !excl && e.needsGap(off, size) {
			in.Lock.RUnlock()
			excl = true
			continue
		}
		break
	}
	if excl {
		var err error
		if nowait && !in.DIO.Idle() {
			err = lock.ErrWouldBlock
		} else {
			err = in.DIO.Wait(ctx)
		}
		if err != nil {
			in.Lock.Unlock()
			return opErr("write", op, err)
		}
		// Writes that completed during the drain raised the size: the
		// EOF-tail zeroing must start at the final one, or it would zero
		// their data.
		size = in.Size()
	}

	// Step 3: write back and invalidate cached pages (I5). A failure here
	// fails the op before anything is submitted (seed 004).
	lo := off
	if excl && size < lo {
		lo = size
	}
	if c := in.cacheFor(lo, end-lo); c != nil {
		var err error
		if nowait {
			err = cacheNowait(c, lo, end-lo, true)
		} else if err = writeBack(c, lo, end-lo); err == nil {
			err = c.Invalidate(lo, end-lo)
		}
		if err != nil {
			in.Lock.UnlockMode(excl)
			return opErr("write", op, err)
		}
	}

	// Step 4: dio begin, map, allocate, range locks.
	in.DIO.Begin()
	d := e.getDop(op, true)
	d.unaligned = ua
	if err := d.prepareWrite(ctx, nowait, size, excl); err != nil {
		if d.ranged {
			in.Ranges.Unlock(&d.rng)
		}
		e.putDop(d)
		in.DIO.End()
		in.Lock.UnlockMode(excl)
		return opErr("write", op, err)
	}

	// Step 5: submit; the op holds one reference for us.
	d.refs.Store(1)
	d.fallback = d.dend < end
	d.onWorker = d.convert || op.Flags&DSync != 0
	d.submit()
	if d.fallback {
		d.finishFallback(excl)
		return nil
	}
	// Step 6: release the inode lock (a partial-sector write hands its
	// exclusive hold to end-I/O instead), drop our reference.
	if partial {
		d.holdLock = true
	} else {
		in.Lock.UnlockMode(excl)
	}
	d.put()
	return nil
}

func opErr(what string, op *Op, err error) error {
	if errors.Is(err, syscall.EAGAIN) && errors.Is(err, lock.ErrWouldBlock) {
		return fmt.Errorf("dio: %s ino %d off %d len %d: RWF_NOWAIT: %w", what, op.Inode.Ino, op.Off, len(op.Buf), err)
	}
	return fmt.Errorf("dio: %s ino %d off %d len %d: %w", what, op.Inode.Ino, op.Off, len(op.Buf), err)
}

// prepareWrite maps the range, decides the direct part, takes the range
// lock (I6), allocates unwritten blocks and builds the device requests.
// On error nothing was submitted; d.ranged says whether rng is held.
func (d *dop) prepareWrite(ctx context.Context, nowait bool, size int64, excl bool) error {
	e, in, op := d.e, d.in, d.op
	sh := e.bsShift
	off, end := op.Off, op.Off+int64(len(op.Buf))
	if excl && e.needsGap(off, size) {
		if err := d.zeroEOFTail(size); err != nil {
			return err
		}
	}
	fb, lb := off>>sh, (end-1)>>sh+1
	var dend int64
	for {
		var err error
		d.maps, err = e.ext.Map(d.maps[:0], in.Ino, fb, lb-fb)
		if err != nil {
			return err
		}
		dend = e.directEnd(d.maps, off, end, size)
		ls, le := e.lockSpan(d.maps, off, dend)
		if ls >= le || (d.ranged && d.rng.Start <= ls && le <= d.rng.End) {
			break
		}
		if d.ranged {
			// The need grew while we waited (rare): relock the union.
			ls, le = min(ls, d.rng.Start), max(le, d.rng.End)
			in.Ranges.Unlock(&d.rng)
			d.ranged = false
		}
		d.rng.Start, d.rng.End, d.rng.Shared = ls, le, false
		if nowait {
			if !in.Ranges.TryLock(&d.rng) {
				return lock.ErrWouldBlock
			}
		} else if err := in.Ranges.Lock(ctx, &d.rng); err != nil {
			return err
		}
		d.ranged = true
		// Map again under the range lock: another writer may have
		// allocated or converted these blocks while we waited.
	}
	d.dend = dend
	if dend == off {
		return nil // everything goes through the fallback
	}
	if nowait && dend < end {
		// The buffered remainder would wait for the direct part and for
		// its own write-back.
		return wouldBlock("the write falls back to buffered I/O")
	}
	dlb := (dend-1)>>sh + 1
	d.maps = trimMaps(d.maps, dlb)
	if nowait && hasState(d.maps, meta.Hole) {
		// Allocation may wait for a commit (AllocUnwritten commits to
		// reuse freed blocks, O3); Linux's IOMAP_NOWAIT likewise refuses
		// to allocate.
		return wouldBlock("the write needs block allocation")
	}
	if !allWritten(d.maps) || dend > size {
		d.convert, d.cfb, d.ccount = true, fb, dlb-fb
	}
	return d.buildWrite(off, dend, nowait)
}

// wouldBlock is the RWF_NOWAIT refusal for why.
func wouldBlock(why string) error {
	return fmt.Errorf("dio: %s: %w", why, lock.ErrWouldBlock)
}

// buildWrite lays out the memory for the direct part [off, dend), allocates
// its holes unwritten and builds its device requests. Partial blocks that
// are not written are padded with zeros to whole blocks (no stale bytes
// around the data, I1); partial sectors of written blocks are read,
// modified and written (StrictAlignment false). All of it happens under
// the range lock (I6).
//
// The edge-sector reads come before the allocation: a read that fails
// rejects the op with nothing allocated (the written edge blocks they read
// keep their mapping whatever is allocated around them). If the allocation
// itself fails (ENOSPC) it left nothing changed (meta.AllocUnwritten).
// Blocks are allocated only once nothing can fail before submission except
// building requests, which cannot fail; if a data request then fails, the
// blocks stay allocated unwritten: they read as zeros (I1), fsck accepts
// them, and truncate, punch or unlink free them (as XFS keeps the unwritten
// extents of a failed direct write).
func (d *dop) buildWrite(off, dend int64, nowait bool) error {
	e, in := d.e, d.in
	ss, sh := int64(e.ss), e.bsShift
	hb, tb := off>>sh, (dend-1)>>sh
	xs, xe := off, dend
	headRMW, tailRMW := false, false
	hw, tw := stateAt(d.maps, hb) == meta.Written, stateAt(d.maps, tb) == meta.Written
	switch {
	case !hw:
		xs = hb << sh
	case off%ss != 0:
		xs, headRMW = off&^(ss-1), true
	}
	switch {
	case !tw:
		xe = (tb + 1) << sh
	case dend%ss != 0:
		xe, tailRMW = (dend+ss-1)&^(ss-1), true
	}
	if nowait && (headRMW || tailRMW) {
		return wouldBlock("the write must read partial sectors first")
	}
	data := d.op.Buf[:dend-off]
	if xs == off && xe == dend && alignbuf.IsAligned(data, e.memAlign) {
		d.buf, d.xs = data, off
	} else {
		d.buf, d.bounced, d.xs = e.bounce.Get(int(xe-xs)), true, xs
		if headRMW {
			if err := e.syncIO(device.Read, devOff(d.maps, xs, sh), d.buf[:ss]); err != nil {
				return err
			}
		} else {
			clear(d.buf[:off-xs])
		}
		if tailRMW && (!headRMW || xe-ss > xs) { // one sector: read once
			if err := e.syncIO(device.Read, devOff(d.maps, xe-ss, sh), d.buf[xe-ss-xs:]); err != nil {
				return err
			}
		} else if !tailRMW {
			clear(d.buf[dend-xs:])
		}
		copy(d.buf[off-xs:], data)
	}
	if hasState(d.maps, meta.Hole) {
		fb, n := hb, tb+1-hb
		if err := e.ext.AllocUnwritten(in.Ino, fb, n); err != nil {
			return err
		}
		var err error
		if d.maps, err = e.ext.Map(d.maps[:0], in.Ino, fb, n); err != nil {
			return err
		}
		if hasState(d.maps, meta.Hole) {
			return fmt.Errorf("dio: hole left after allocation: %w", syscall.EIO)
		}
	}
	d.buildIO(device.Write, xs, xe)
	return nil
}

// buildIO adds the requests for file bytes [a, b) of d.buf. Reads of
// blocks that are not written fill zeros instead (I1).
func (d *dop) buildIO(kind device.Kind, a, b int64) {
	sh := d.e.bsShift
	for _, m := range d.maps {
		ms, me := m.FileBlock<<sh, (m.FileBlock+m.Count)<<sh
		lo, hi := max(a, ms), min(b, me)
		if lo >= hi {
			continue
		}
		bo := int(lo - d.xs)
		if m.State != meta.Written && kind == device.Read {
			clear(d.buf[bo : bo+int(hi-lo)])
			continue
		}
		d.addReq(kind, m.DevBlock<<sh+(lo-ms), bo, int(hi-lo))
	}
}

// directEnd returns where the direct part of a write [off, end) ends: end,
// or under BufferedFallback the start of the first hole inside the file
// size (blocks below size/bs; seed 001: "for writes inside i_size we
// forbid block creations").
func (e *Engine) directEnd(maps []meta.Mapping, off, end, size int64) int64 {
	if e.o.HolePolicy != BufferedFallback {
		return end
	}
	inside := size >> e.bsShift
	for _, m := range maps {
		if m.State == meta.Hole && m.FileBlock < inside {
			return min(end, max(off, m.FileBlock<<e.bsShift))
		}
	}
	return end
}

// lockSpan returns the block range [ls, le) the write [off, dend) must hold
// locked: every block not yet written (allocation, zero padding, conversion)
// and, without StrictAlignment, the written edge blocks whose partial
// sectors are read-modify-written. Overwrites of written blocks need none.
func (e *Engine) lockSpan(maps []meta.Mapping, off, dend int64) (ls, le int64) {
	if dend <= off {
		return 0, 0
	}
	sh, ss := e.bsShift, int64(e.ss)
	fb, lb := off>>sh, (dend-1)>>sh+1
	ls, le = lb, fb
	add := func(a, b int64) {
		ls, le = min(ls, a), max(le, b)
	}
	for _, m := range maps {
		if m.State != meta.Written {
			a, b := max(m.FileBlock, fb), min(m.FileBlock+m.Count, lb)
			if a < b {
				add(a, b)
			}
		}
	}
	if off%ss != 0 {
		add(fb, fb+1)
	}
	if dend%ss != 0 {
		add(lb-1, lb)
	}
	return ls, le
}

// zeroEOFTail zeroes the bytes of the block holding EOF from size to the
// block's end when that block is written (they may hold data a truncate
// cut off, I1).
//
// Preconditions: the inode lock is held exclusive and the drain is empty.
func (d *dop) zeroEOFTail(size int64) error {
	e := d.e
	sh, ss := e.bsShift, int64(e.ss)
	eb := size >> sh
	var err error
	d.maps, err = e.ext.Map(d.maps[:0], d.in.Ino, eb, 1)
	if err != nil {
		return err
	}
	if stateAt(d.maps, eb) != meta.Written {
		return nil
	}
	s0, bend := size&^(ss-1), (eb+1)<<sh
	buf := e.bounce.Get(int(bend - s0))
	defer e.bounce.Put(buf)
	dev := devOff(d.maps, s0, sh)
	if size != s0 {
		if err := e.syncIO(device.Read, dev, buf[:ss]); err != nil {
			return err
		}
	}
	clear(buf[size-s0:])
	return e.syncIO(device.Write, dev, buf)
}

// endWrite is end-I/O of a direct write (DESIGN §6 step 6).
func (d *dop) endWrite() {
	e, in, op := d.e, d.in, d.op
	err := d.firstErr()
	if err == nil && d.convert {
		// Unwritten → written and the size raised behind the data (I8).
		err = e.ext.ConvertWritten(in.Ino, d.cfb, d.ccount, d.dend)
		if err == nil {
			in.GrowSize(d.dend)
		}
	}
	if err == nil && op.Flags&DSync != 0 {
		err = e.ext.Commit() // I10
	}
	if c := in.cacheFor(op.Off, d.dend-op.Off); c != nil {
		// Second invalidation; its failure never changes the outcome (I5).
		_ = c.Invalidate(op.Off, d.dend-op.Off)
	}
	if d.ranged {
		in.Ranges.Unlock(&d.rng)
	}
	if d.holdLock {
		in.Lock.Unlock()
	}
	n := 0
	if err == nil {
		n = int(d.dend - op.Off)
	} else {
		err = opErr("write", op, err)
	}
	d.complete(n, err)
}

// finishFallback completes a write whose direct part ended early
// (BufferedFallback): it waits for every submitted request (I3, seed 000),
// writes the remainder from the exact byte where the direct part ended
// through the cache (I4, seed 003), writes it back and waits (I10), and
// completes once with the total.
func (d *dop) finishFallback(excl bool) {
	e, in, op := d.e, d.in, d.op
	d.put()
	<-d.wake
	off, dend, end := op.Off, d.dend, op.Off+int64(len(op.Buf))
	err := d.firstErr()
	if err == nil && d.convert {
		err = e.ext.ConvertWritten(in.Ino, d.cfb, d.ccount, dend)
		if err == nil {
			in.GrowSize(dend)
		}
	}
	// The second invalidation of the direct part (I5), before the
	// remainder goes through the cache: with blocks smaller than pages the
	// page holding dend also holds direct-part bytes, and a copy a buffered
	// reader cached while they were in flight holds the old ones; written
	// into and written back, it would put them back over the direct data.
	// Its failure never changes the outcome.
	if c := in.cacheFor(off, dend-off); c != nil && dend > off {
		_ = c.Invalidate(off, dend-off)
	}
	n := 0
	if err == nil {
		n = int(dend - off)
		err = d.bufferedRemainder(dend, end)
		if err == nil {
			n = len(op.Buf)
		}
	}
	if err == nil && op.Flags&DSync != 0 {
		err = e.ext.Commit()
	}
	if d.ranged {
		in.Ranges.Unlock(&d.rng)
	}
	in.Lock.UnlockMode(excl)
	if err != nil {
		err = opErr("write", op, err)
	}
	d.complete(n, err)
}

func (d *dop) bufferedRemainder(dend, end int64) error {
	e, in, op := d.e, d.in, d.op
	c := in.cache
	if c == nil {
		return fmt.Errorf("dio: buffered fallback needs a page cache: %w", syscall.EIO)
	}
	rem := op.Buf[dend-op.Off:]
	w, err := c.WriteAt(rem, dend)
	if w > 0 {
		in.GrowSize(dend + int64(w))
	}
	if err == nil {
		err = c.WriteAndWait(dend, end-dend)
	}
	if err == nil {
		sh := e.bsShift
		fb := dend >> sh
		err = e.ext.ConvertWritten(in.Ino, fb, (end-1)>>sh+1-fb, end)
	}
	return err
}

// Helpers over a mapping list.

func stateAt(maps []meta.Mapping, blk int64) meta.State {
	for _, m := range maps {
		if blk >= m.FileBlock && blk < m.FileBlock+m.Count {
			return m.State
		}
	}
	return meta.Hole
}

func devOff(maps []meta.Mapping, fileOff int64, sh uint) int64 {
	blk := fileOff >> sh
	for _, m := range maps {
		if blk >= m.FileBlock && blk < m.FileBlock+m.Count {
			return m.DevBlock<<sh + fileOff - m.FileBlock<<sh
		}
	}
	return -1
}

func hasState(maps []meta.Mapping, s meta.State) bool {
	for _, m := range maps {
		if m.State == s {
			return true
		}
	}
	return false
}

func allWritten(maps []meta.Mapping) bool {
	for _, m := range maps {
		if m.State != meta.Written {
			return false
		}
	}
	return true
}

// trimMaps drops the mappings at or past block lb and clips the last one.
func trimMaps(maps []meta.Mapping, lb int64) []meta.Mapping {
	for i := range maps {
		if maps[i].FileBlock >= lb {
			return maps[:i]
		}
		if maps[i].FileBlock+maps[i].Count > lb {
			maps[i].Count = lb - maps[i].FileBlock
		}
	}
	return maps
}

// syncReq is a pooled single request waited on by its submitter (edge
// sector reads, EOF-tail zeroing).
type syncReq struct {
	r    device.Request
	ch   chan struct{}
	done func(*device.Request)
}

func (e *Engine) syncIO(kind device.Kind, off int64, buf []byte) error {
	if off < 0 {
		return fmt.Errorf("dio: edge sector not mapped: %w", syscall.EIO)
	}
	s, _ := e.syncs.Get().(*syncReq)
	if s == nil {
		s = &syncReq{ch: make(chan struct{}, 1)}
		s.done = func(*device.Request) { s.ch <- struct{}{} }
	}
	var err error
	for len(buf) > 0 {
		s.r = device.Request{Kind: kind, Off: off, Buf: buf, Done: s.done}
		if _, err = e.dev.Submit(&s.r); err != nil {
			break
		}
		<-s.ch
		err = s.r.Err
		n := s.r.N
		if err == nil && n != len(buf) && (n <= 0 || n > len(buf) || n%e.ss != 0) {
			err = errShort
		}
		if err != nil {
			break
		}
		// A short transfer continues with the remainder (see requestDone).
		off, buf = off+int64(n), buf[n:]
	}
	s.r = device.Request{}
	e.syncs.Put(s)
	return err
}
