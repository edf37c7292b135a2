package meta

import (
	"fmt"
	"syscall"

	"github.com/aiodio/aiodio/device"
)

// Synchronous metadata I/O on the asynchronous device: build the requests
// (split at the device's MaxIO), submit them all, wait for every completion.
// Buffers come from alignbuf and are block multiples.

func (f *FS) ioSync(kind device.Kind, off int64, buf []byte) error {
	maxIO := f.dev.Info().MaxIO
	if maxIO <= 0 {
		maxIO = 1 << 20
	}
	maxIO -= maxIO % int(f.bs)
	if maxIO <= 0 {
		maxIO = int(f.bs)
	}
	n := 1
	if kind != device.Flush {
		n = (len(buf) + maxIO - 1) / maxIO
		if n == 0 {
			return nil
		}
	}
	done := make(chan *device.Request, n)
	reqs := make([]*device.Request, n)
	for i := range reqs {
		r := &device.Request{Kind: kind, Done: func(r *device.Request) { done <- r }}
		if kind != device.Flush {
			lo := i * maxIO
			hi := min(lo+maxIO, len(buf))
			r.Off = off + int64(lo)
			r.Buf = buf[lo:hi]
		}
		reqs[i] = r
	}
	submitted, err := f.dev.Submit(reqs...)
	var first error
	if err != nil {
		first = fmt.Errorf("meta: %v at %d: %w", kind, off, err)
	}
	for i := 0; i < submitted; i++ {
		r := <-done
		if r.Err != nil && first == nil {
			first = fmt.Errorf("meta: %v at %d: %w", kind, r.Off, r.Err)
		} else if r.Err == nil && r.N != r.Len() && first == nil {
			first = fmt.Errorf("meta: short %v at %d: %d of %d bytes: %w", kind, r.Off, r.N, r.Len(), syscall.EIO)
		}
	}
	return first
}

func (f *FS) writeSync(off int64, buf []byte) error { return f.ioSync(device.Write, off, buf) }
func (f *FS) readSync(off int64, buf []byte) error  { return f.ioSync(device.Read, off, buf) }
func (f *FS) flushSync() error                      { return f.ioSync(device.Flush, 0, nil) }
