package dio

// waitOp is a pooled Op with a completion channel for the sync wrappers.
type waitOp struct {
	op Op
	ch chan struct{}
}

func (e *Engine) getWait() *waitOp {
	w, _ := e.waits.Get().(*waitOp)
	if w == nil {
		w = &waitOp{ch: make(chan struct{}, 1)}
		w.op.Done = func(*Op) { w.ch <- struct{}{} }
	}
	return w
}

func (e *Engine) do(write bool, in *Inode, p []byte, off int64, flags uint32) (int, error) {
	w := e.getWait()
	done := w.op.Done
	w.op = Op{Inode: in, Buf: p, Off: off, Flags: flags, Done: done}
	var err error
	if write {
		err = e.Write(&w.op)
	} else {
		err = e.Read(&w.op)
	}
	if err != nil {
		e.waits.Put(w)
		return 0, err
	}
	<-w.ch
	n, err := w.op.N, w.op.Err
	w.op = Op{Done: done}
	e.waits.Put(w)
	return n, err
}

// ReadAt is the synchronous direct read (io.ReaderAt semantics: n < len(p)
// comes with a non-nil error, io.EOF at end of file).
func (e *Engine) ReadAt(in *Inode, p []byte, off int64, flags uint32) (int, error) {
	return e.do(false, in, p, off, flags)
}

// WriteAt is the synchronous direct write (io.WriterAt semantics).
func (e *Engine) WriteAt(in *Inode, p []byte, off int64, flags uint32) (int, error) {
	return e.do(true, in, p, off, flags)
}
