package device

import (
	"fmt"
	"syscall"
	"unsafe"
)

// MaxVecs is the largest number of buffers a vectored request may name
// (Linux's IOV_MAX).
const MaxVecs = 1024

// Check validates r against a device described by info, the way every
// engine's Submit does before accepting a request. It returns nil or an error
// wrapping syscall.EINVAL whose message names the request and the alignment
// or bound it violates. It allocates only when it fails.
//
// Rules: Done must be set; Kind must be Read, Write or Flush; for Read and
// Write, Off must be >= 0 and a multiple of LogicalBlockSize, every buffer's
// length a multiple of LogicalBlockSize and its address a multiple of
// MemAlign, the total length at most MaxIO and Off+length at most Size; at
// most MaxVecs buffers.
func Check(info Info, r *Request) error {
	if r == nil {
		return fmt.Errorf("device: nil request: %w", syscall.EINVAL)
	}
	if r.Done == nil {
		return fmt.Errorf("device: %v request without a Done callback: %w", r.Kind, syscall.EINVAL)
	}
	switch r.Kind {
	case Flush:
		return nil
	case Read, Write:
	default:
		return fmt.Errorf("device: unknown request kind %d: %w", r.Kind, syscall.EINVAL)
	}
	lbs := int64(info.LogicalBlockSize)
	if lbs <= 0 {
		lbs = 1
	}
	if r.Off < 0 {
		return fmt.Errorf("device: %v at offset %d: negative offset: %w", r.Kind, r.Off, syscall.EINVAL)
	}
	if r.Off%lbs != 0 {
		return fmt.Errorf("device: %v at offset %d: offset must be a multiple of the logical block size %d: %w",
			r.Kind, r.Off, lbs, syscall.EINVAL)
	}
	var n int64
	if r.Bufs == nil {
		if err := checkBuf(info, r, -1, r.Buf, lbs); err != nil {
			return err
		}
		n = int64(len(r.Buf))
	} else {
		if len(r.Bufs) > MaxVecs {
			return fmt.Errorf("device: %v at offset %d: %d buffers, at most %d allowed: %w",
				r.Kind, r.Off, len(r.Bufs), MaxVecs, syscall.EINVAL)
		}
		for i, b := range r.Bufs {
			if err := checkBuf(info, r, i, b, lbs); err != nil {
				return err
			}
			n += int64(len(b))
		}
	}
	if info.MaxIO > 0 && n > int64(info.MaxIO) {
		return fmt.Errorf("device: %v at offset %d: length %d exceeds the device's max I/O size %d (split the request): %w",
			r.Kind, r.Off, n, info.MaxIO, syscall.EINVAL)
	}
	if r.Off > info.Size || n > info.Size-r.Off {
		return fmt.Errorf("device: %v at offset %d length %d: past the end of the device (size %d): %w",
			r.Kind, r.Off, n, info.Size, syscall.EINVAL)
	}
	return nil
}

func checkBuf(info Info, r *Request, i int, b []byte, lbs int64) error {
	if int64(len(b))%lbs != 0 {
		return fmt.Errorf("device: %v at offset %d: %s length %d must be a multiple of the logical block size %d: %w",
			r.Kind, r.Off, bufName(i), len(b), lbs, syscall.EINVAL)
	}
	if len(b) > 0 && info.MemAlign > 1 {
		addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if addr&uintptr(info.MemAlign-1) != 0 {
			return fmt.Errorf("device: %v at offset %d: %s address %#x must be aligned to %d bytes (memory alignment): %w",
				r.Kind, r.Off, bufName(i), addr, info.MemAlign, syscall.EINVAL)
		}
	}
	return nil
}

func bufName(i int) string {
	if i < 0 {
		return "buffer"
	}
	return fmt.Sprintf("buffer %d", i)
}
