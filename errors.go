package aiodio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Errors returned by aiodio, grouped by when they happen. Every one wraps a
// syscall.Errno, so callers test them with errors.Is(err, syscall.EXXX) as
// well as with errors.Is(err, ErrX). File and namespace calls return them
// inside an *fs.PathError that names the operation and the path.

// Returned when opening or closing a volume.
var (
	// ErrVolumeClosed is returned by every Volume and File call after
	// Volume.Close. It matches syscall.EBADF and fs.ErrClosed.
	ErrVolumeClosed error = &closedError{what: "volume is closed"}
	// ErrInUse is returned by Open when another process (or another Open in
	// this process) holds the image or device. It matches syscall.EBUSY.
	ErrInUse = fmt.Errorf("aiodio: volume in use by another opener: %w", syscall.EBUSY)
)

// Returned by File calls.
var (
	// ErrFileClosed is returned by File calls after File.Close. It matches
	// syscall.EBADF and fs.ErrClosed (os.ErrClosed).
	ErrFileClosed error = &closedError{what: "file already closed"}
	// ErrNotReadable is returned by reads of a file opened O_WRONLY (EBADF).
	ErrNotReadable = fmt.Errorf("file not opened for reading: %w", syscall.EBADF)
	// ErrNotWritable is returned by writes, truncates and fallocates of a
	// file opened O_RDONLY (EBADF).
	ErrNotWritable = fmt.Errorf("file not opened for writing: %w", syscall.EBADF)
	// ErrRemoved is returned by I/O on an open file after its name was
	// removed (or replaced by Rename): aiodio frees a file's blocks at
	// removal and does not keep unlinked files alive (ESTALE).
	ErrRemoved = fmt.Errorf("file was removed while open: %w", syscall.ESTALE)
	// ErrNegativeOffset is returned for a negative offset or length (EINVAL).
	ErrNegativeOffset = fmt.Errorf("negative offset or length: %w", syscall.EINVAL)
	// ErrFileTooLarge is returned when an offset plus length passes
	// MaxFileSize (EFBIG).
	ErrFileTooLarge = fmt.Errorf("offset past the maximum file size: %w", syscall.EFBIG)
)

// Returned by Ring calls.
var (
	// ErrRingClosed is returned by Submit and Wait after Ring.Close
	// (EBADF, fs.ErrClosed).
	ErrRingClosed error = &closedError{what: "ring is closed"}
	// ErrRingFull is returned by Submit when accepting one more op would
	// exceed the ring's entries (EAGAIN): Wait for completions first.
	ErrRingFull = fmt.Errorf("ring full: %w", syscall.EAGAIN)
)

// inUseError is Open's error for a locked volume: it matches ErrInUse,
// EBUSY and the device layer's error.
type inUseError struct {
	path string
	err  error
}

func (e *inUseError) Error() string {
	return "aiodio: open " + e.path + ": volume already open (it is locked by another Open in this or another process): " + e.err.Error()
}
func (e *inUseError) Unwrap() []error { return []error{ErrInUse, e.err} }

// closedError wraps syscall.EBADF (so errors.As finds the errno, like
// every other error of the package) and also matches fs.ErrClosed.
type closedError struct{ what string }

func (e *closedError) Error() string { return e.what }
func (e *closedError) Unwrap() error { return syscall.EBADF }
func (e *closedError) Is(target error) bool {
	return target == fs.ErrClosed
}

// errno returns the syscall.Errno err wraps, or 0.
func errno(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}

// pathError wraps err for op on path in an *fs.PathError. An error that is
// already an *fs.PathError (from the metadata layer, for the same path) is
// re-labelled with op; nil and io.EOF pass through unchanged (io.ReaderAt).
// The Err kept is the raw Errno when the lower layer's message adds nothing
// the PathError does not say, so pe.Err == syscall.ENOENT works too.
func pathError(op, path string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		inner := pe.Err
		if en, ok := inner.(syscall.Errno); ok {
			return &fs.PathError{Op: op, Path: path, Err: en}
		}
		return &fs.PathError{Op: op, Path: path, Err: inner}
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return &fs.PathError{Op: op, Path: path, Err: le.Err}
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}
