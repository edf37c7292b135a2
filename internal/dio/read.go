package dio

import (
	"io"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// Read starts a direct read of op.Buf at op.Off. See Op for the ownership
// and completion rules. A read that reaches end of file completes with the
// bytes up to EOF and io.EOF (I4); holes and unwritten blocks read as zeros
// without device I/O (I1). A nil return means Done will be called exactly
// once; an error means the op was rejected (bad arguments, EAGAIN under
// NoWait, a failed write-back of dirty cached pages, a cancelled ctx).
func (e *Engine) Read(op *Op) error {
	if err := e.validate(op, "read"); err != nil {
		return err
	}
	if len(op.Buf) == 0 {
		completeEarly(op, 0, nil)
		return nil
	}
	in := op.Inode
	nowait := op.Flags&NoWait != 0
	off := op.Off
	if err := in.Lock.LockMode(opCtx(op), false, nowait); err != nil {
		return opErr("read", op, err)
	}
	// Dirty cached pages of the range reach the device first (I5, seed 001).
	if c := in.cacheFor(off, int64(len(op.Buf))); c != nil {
		var err error
		if nowait {
			err = cacheNowait(c, off, int64(len(op.Buf)), false)
		} else {
			err = writeBack(c, off, int64(len(op.Buf)))
		}
		if err != nil {
			in.Lock.RUnlock()
			return opErr("read", op, err)
		}
	}
	// The size is read under the lock, after any extending write whose
	// end-I/O raised it has converted its blocks (I8).
	size := in.Size()
	if off >= size {
		in.Lock.RUnlock()
		completeEarly(op, 0, io.EOF)
		return nil
	}
	rend := min(off+int64(len(op.Buf)), size)
	in.DIO.Begin()
	d := e.getDop(op, false)
	d.cnt = int(rend - off)
	sh, ss := e.bsShift, int64(e.ss)
	var err error
	d.maps, err = e.ext.Map(d.maps[:0], in.Ino, off>>sh, (rend-1)>>sh+1-off>>sh)
	if err != nil {
		e.putDop(d)
		in.DIO.End()
		in.Lock.RUnlock()
		return opErr("read", op, err)
	}
	// Whole sectors: [xs, xe). Bytes past EOF in the last sector are zeroed
	// at end-I/O, never shown (I1).
	xs, xe := off&^(ss-1), (rend+ss-1)&^(ss-1)
	if xs == off && xe-off <= int64(len(op.Buf)) && alignbuf.IsAligned(op.Buf, e.memAlign) {
		d.buf, d.xs = op.Buf[:xe-off], off
	} else {
		d.buf, d.bounced, d.xs = e.bounce.Get(int(xe-xs)), true, xs
	}
	d.buildIO(device.Read, xs, xe)
	d.refs.Store(1)
	d.submit()
	// Direct reads hold the inode lock only until submission.
	in.Lock.RUnlock()
	d.put()
	return nil
}

// endRead is end-I/O of a direct read.
func (d *dop) endRead() {
	op := d.op
	err := d.firstErr()
	n := 0
	if err == nil {
		n = d.cnt
		if d.bounced {
			copy(op.Buf[:n], d.buf[op.Off-d.xs:])
		} else {
			clear(d.buf[n:])
		}
		if n < len(op.Buf) {
			err = io.EOF
		}
	} else {
		err = opErr("read", op, err)
	}
	d.complete(n, err)
}
