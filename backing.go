package aiodio

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// The pagecache.Backing of an open inode: the cache calls these, with no
// aiodio lock held, to fill pages and to write them back.
//
// Delayed allocation: a buffered write only dirties pages; WritePages
// allocates unwritten blocks, writes the data to them and only then marks
// them written (and raises the durable size), so a block is never exposed
// before its data is on the device (I1), and after a crash it is either
// unwritten (reads zero) or holds the data (I11, with O2 in meta.Commit).

var _ pagecache.Backing = (*inode)(nil)

// Size returns the logical size (pages past it start zero-filled).
func (in *inode) Size() int64 { return in.d.Size() }

func (in *inode) getMaps() *[]meta.Mapping {
	if m, ok := in.mapBuf.Get().(*[]meta.Mapping); ok {
		*m = (*m)[:0]
		return m
	}
	m := make([]meta.Mapping, 0, 16)
	return &m
}

// ReadPages fills p with the file's bytes at off: written blocks from the
// device, holes and unwritten blocks as zeros, and zeros past the end of
// file (whatever the device holds there).
//
// A direct write may land under a fill; its invalidation afterwards cannot
// drop the page while the fill runs (it is busy). So a fill that overlaps an
// invalidation by the direct engine reads again (a few times at most),
// rather than caching bytes older than a completed direct write (seed 004).
func (in *inode) ReadPages(off int64, p []byte) error {
	for range 4 {
		seq := in.invalSeq.Load()
		if err := in.readPages(off, p); err != nil {
			return err
		}
		if in.invalSeq.Load() == seq {
			return nil
		}
	}
	return nil
}

func (in *inode) readPages(off int64, p []byte) error {
	v := in.v
	bs := v.bs
	end := off + int64(len(p))
	fb, lb := off/bs, (end+bs-1)/bs
	mp := in.getMaps()
	defer in.mapBuf.Put(mp)
	maps, err := v.meta.Map(*mp, in.ino, fb, lb-fb)
	*mp = maps
	if err != nil {
		return err
	}
	// The end of file, read after the map: a block the map shows written
	// either lies below it or is a tail that must read as zeros.
	eof := in.dirtyBound()
	if a, err := v.meta.Attr(in.ino); err == nil {
		eof = max(eof, a.Size)
	}
	ios := getIOSet()
	defer putIOSet(ios)
	segs := ios.segs
	for _, m := range maps {
		lo := max(m.FileBlock*bs, off)
		hi := min((m.FileBlock+m.Count)*bs, end)
		buf := p[lo-off : hi-off]
		if m.State != meta.Written {
			clear(buf)
			continue
		}
		segs = append(segs, devSeg{off: m.DevBlock*bs + (lo - m.FileBlock*bs), buf: buf})
	}
	ios.segs = segs
	if err := v.devIOSet(ios, device.Read, segs); err != nil {
		return err
	}
	if eof < end {
		clear(p[max(eof-off, 0):])
	}
	return nil
}

// WritePages writes p at off: allocate the holes of the range as unwritten,
// write the data, convert to written and raise the durable size to the end
// of the data (bounded by dirtyBound, the bytes the file may hold).
func (in *inode) WritePages(off int64, p []byte) error {
	if in.removed.Load() {
		return ErrRemoved
	}
	v := in.v
	bs := v.bs
	if bs > pagecache.PageSize {
		in.wbMu.Lock()
		defer in.wbMu.Unlock()
	}
	start, end := off, off+int64(len(p))
	fb, lb := start/bs, (end+bs-1)/bs
	if bs < pagecache.PageSize {
		// Blocks wholly past the end of file hold only the zero tail of
		// the last page: do not allocate them.
		lim := (in.dirtyBound() + bs - 1) / bs
		if lb > lim {
			lb = max(lim, fb)
			end = lb * bs
		}
		if lb == fb {
			return nil
		}
	}
	mp := in.getMaps()
	defer in.mapBuf.Put(mp)
	// With blocks larger than pages, a partially covered block that is not
	// yet written gets zeros around the data: converting it to written
	// must not expose what the device held there.
	ws, we := start, end
	if bs > pagecache.PageSize && (start%bs != 0 || end%bs != 0) {
		maps, err := v.meta.Map((*mp)[:0], in.ino, fb, lb-fb)
		*mp = maps
		if err != nil {
			return err
		}
		if start%bs != 0 && maps[0].State != meta.Written {
			ws = fb * bs
		}
		if end%bs != 0 && maps[len(maps)-1].State != meta.Written {
			we = lb * bs
		}
	}
	if err := v.meta.AllocUnwritten(in.ino, fb, lb-fb); err != nil {
		return err // after a commit if blocks were pending free (meta does it)
	}
	in.unreserve(fb, lb, true)
	maps, err := v.meta.Map((*mp)[:0], in.ino, fb, lb-fb)
	*mp = maps
	if err != nil {
		return err
	}
	data := p[:end-start]
	if ws != start || we != end {
		data = alignbuf.Alloc(int(we - ws))
		copy(data[start-ws:], p[:end-start])
	}
	ios := getIOSet()
	defer putIOSet(ios)
	segs := ios.segs
	for _, m := range maps {
		lo := max(m.FileBlock*bs, ws)
		hi := min((m.FileBlock+m.Count)*bs, we)
		if hi <= lo {
			continue
		}
		if m.State == meta.Hole {
			return fmt.Errorf("aiodio: writeback of inode %d: block %d unmapped after allocation: %w", in.ino, m.FileBlock, syscall.EIO)
		}
		segs = append(segs, devSeg{off: m.DevBlock*bs + (lo - m.FileBlock*bs), buf: data[lo-ws : hi-ws]})
	}
	ios.segs = segs
	if err := v.devIOSet(ios, device.Write, segs); err != nil {
		return err
	}
	return v.meta.ConvertWritten(in.ino, fb, lb-fb, min(end, in.dirtyBound()))
}

// devSeg is one contiguous device range and its buffer.
type devSeg struct {
	off int64
	buf []byte
}

// ioSet is the per-call state of devIO, pooled so that a writeback or fill
// allocates nothing in the steady state: the requests, their pointers, the
// completion channel and its callback, and a segment list for the caller.
type ioSet struct {
	segs   []devSeg
	store  []device.Request
	reqs   []*device.Request
	done   chan *device.Request
	onDone func(*device.Request)
}

const ioSetChan = 16 // completion channel capacity of a pooled set

var ioSetPool = sync.Pool{New: func() any {
	s := &ioSet{done: make(chan *device.Request, ioSetChan)}
	s.onDone = func(r *device.Request) { s.done <- r }
	return s
}}

func getIOSet() *ioSet {
	s := ioSetPool.Get().(*ioSet)
	s.segs = s.segs[:0]
	return s
}

// putIOSet returns s to the pool once every request it submitted has
// completed (the device never touches a request after its Done returned).
func putIOSet(s *ioSet) {
	clear(s.segs)
	clear(s.store)
	clear(s.reqs)
	s.segs, s.store, s.reqs = s.segs[:0], s.store[:0], s.reqs[:0]
	ioSetPool.Put(s)
}

// devIO performs the segments synchronously (split at the device's MaxIO,
// all submitted at once) and returns the first error. Kind Flush ignores
// segs and flushes.
func (v *Volume) devIO(kind device.Kind, segs []devSeg) error {
	s := getIOSet()
	defer putIOSet(s)
	return v.devIOSet(s, kind, segs)
}

func (v *Volume) devIOSet(s *ioSet, kind device.Kind, segs []devSeg) error {
	maxIO := v.info.MaxIO
	if maxIO <= 0 {
		maxIO = device.DefaultMaxIO
	}
	maxIO -= maxIO % v.info.LogicalBlockSize
	n := 0
	if kind == device.Flush {
		n = 1
	}
	for _, sg := range segs {
		n += (len(sg.buf) + maxIO - 1) / maxIO
	}
	if n == 0 {
		return nil
	}
	if cap(s.store) < n {
		s.store = make([]device.Request, n)
	}
	store := s.store[:n]
	reqs := s.reqs[:0]
	done, onDone := s.done, s.onDone
	if n > cap(done) {
		// More requests than the pooled channel holds: a channel of
		// their own, so that no completion ever blocks.
		c := make(chan *device.Request, n)
		done, onDone = c, func(r *device.Request) { c <- r }
	}
	k := 0
	if kind == device.Flush {
		store[k] = device.Request{Kind: device.Flush, Done: onDone}
		reqs = append(reqs, &store[k])
		k++
	}
	for _, sg := range segs {
		for o := 0; o < len(sg.buf); o += maxIO {
			store[k] = device.Request{Kind: kind, Off: sg.off + int64(o), Buf: sg.buf[o:min(o+maxIO, len(sg.buf))], Done: onDone}
			reqs = append(reqs, &store[k])
			k++
		}
	}
	s.store, s.reqs = store, reqs
	sub, err := v.dev.Submit(reqs...)
	var first error
	if err != nil {
		first = fmt.Errorf("aiodio: %v at device offset %d: %w", kind, reqs[sub].Off, err)
	}
	for range sub {
		r := <-done
		if r.Err != nil && first == nil {
			first = fmt.Errorf("aiodio: %v at device offset %d: %w", kind, r.Off, r.Err)
		} else if r.Err == nil && r.N != r.Len() && first == nil {
			first = fmt.Errorf("aiodio: short %v at device offset %d: %d of %d bytes: %w", kind, r.Off, r.N, r.Len(), syscall.EIO)
		}
	}
	return first
}
