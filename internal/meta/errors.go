package meta

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/aiodio/aiodio/internal/format"
)

// Errors. Each wraps a syscall.Errno so errors.Is(err, syscall.EXXX) works.
var (
	// ErrNotAiodio and ErrVersion are returned by Mount and Fsck for foreign
	// or newer-version volumes (they match syscall.EINVAL).
	ErrNotAiodio = format.ErrNotAiodio
	ErrVersion   = format.ErrVersion
	// ErrCorrupt is returned by Mount when metadata is inconsistent.
	ErrCorrupt = format.ErrCorrupt
	// ErrTooSmall is returned by Mkfs for a device without room for a data area.
	ErrTooSmall = fmt.Errorf("device too small for an aiodio volume: %w", syscall.ENOSPC)
	// ErrReadOnly is returned by updates on a read-only mount.
	ErrReadOnly = fmt.Errorf("volume mounted read-only: %w", syscall.EROFS)
	// ErrClosed is returned after Close.
	ErrClosed = fmt.Errorf("volume closed: %w", syscall.EBADF)
)

func pathErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func inoErr(op string, ino Ino, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("meta: %s inode %d: %w", op, ino, err)
}
