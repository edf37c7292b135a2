package fuse

import (
	"io"
	"os"
	"syscall"
	"unsafe"

	"github.com/aiodio/aiodio"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
)

// handle is one kernel file handle: the volume file opened for it, in the
// same access mode, with O_DIRECT when the open asked for it.
type handle struct {
	fsys     *filesystem
	ino      uint64
	file     *aiodio.File
	direct   bool
	writable bool
	dsync    bool // opened O_DSYNC or O_SYNC: every write is synced
}

// newHandle registers a handle for vf, opened with the volume flags vflags.
func (fsys *filesystem) newHandle(vf *aiodio.File, ino uint64, vflags int) *handle {
	acc := vflags & syscall.O_ACCMODE
	h := &handle{
		fsys:     fsys,
		ino:      ino,
		file:     vf,
		direct:   vflags&syscall.O_DIRECT != 0,
		dsync:    vflags&(syscall.O_DSYNC|syscall.O_SYNC) != 0,
		writable: acc == os.O_WRONLY || acc == os.O_RDWR,
	}
	fsys.addHandle(h)
	return h
}

// release closes the handle's volume file, unless unmount did already.
func (h *handle) release() syscall.Errno {
	if !h.fsys.dropHandle(h) {
		return 0
	}
	err := h.file.Close()
	if err != nil {
		h.fsys.log.Warn("release: closing the volume file failed", "file", h.file.Name(), "err", err)
		return h.fsys.toErrno("release", err)
	}
	return 0
}

// read reads len(dest) bytes at off. End of file gives a short (or empty)
// result, which is how FUSE reports it. A direct read whose destination is
// not page-aligned reads into a pooled aligned buffer instead, so that the
// volume takes its zero-copy direct path; the buffer returns to the pool
// when go-fuse has sent the reply (ReadResult.Done).
func (h *handle) read(dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	if h.direct && len(dest) > 0 && len(dest) <= maxIOBytes && !pageAligned(dest) {
		bp := h.fsys.bufs.Get().(*[]byte)
		buf := (*bp)[:len(dest)]
		n, err := h.file.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			h.fsys.bufs.Put(bp)
			return nil, h.fsys.toErrno("read", err)
		}
		return &pooledResult{data: buf[:n], bp: bp, fsys: h.fsys}, 0
	}
	n, err := h.file.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, h.fsys.toErrno("read", err)
	}
	return gofuse.ReadResultData(dest[:n]), 0
}

// pageAligned reports whether b starts on a 4 KiB boundary.
func pageAligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&4095 == 0
}

// pooledResult is a read reply in a pooled buffer.
type pooledResult struct {
	data []byte
	bp   *[]byte
	fsys *filesystem
}

func (r *pooledResult) Bytes(_ []byte) ([]byte, gofuse.Status) { return r.data, gofuse.OK }
func (r *pooledResult) Size() int                              { return len(r.data) }
func (r *pooledResult) Done() {
	if r.bp != nil {
		r.fsys.bufs.Put(r.bp)
		r.bp = nil
	}
}
