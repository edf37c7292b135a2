package format

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors returned when decoding on-device structures. Each matches
// syscall.EINVAL with errors.Is, so callers that only check the errno still
// see an invalid-argument failure.
var (
	// ErrNotAiodio is returned when a superblock does not carry aiodio's magic.
	ErrNotAiodio = &formatError{msg: "not an aiodio volume"}
	// ErrVersion is returned when a superblock names a format version this
	// code does not support (a newer one).
	ErrVersion = &formatError{msg: "unsupported aiodio format version"}
	// ErrChecksum is returned when a structure's crc32c does not match.
	ErrChecksum = &formatError{msg: "checksum mismatch"}
	// ErrCorrupt is returned when a structure's fields are inconsistent.
	ErrCorrupt = &formatError{msg: "corrupt metadata"}
)

type formatError struct{ msg string }

func (e *formatError) Error() string { return e.msg }

// Is makes every format error match syscall.EINVAL.
func (e *formatError) Is(target error) bool { return target == syscall.EINVAL }

// wrapError keeps both a sentinel and a detail message.
type wrapError struct {
	sentinel error
	detail   string
}

func (e *wrapError) Error() string { return e.sentinel.Error() + ": " + e.detail }
func (e *wrapError) Unwrap() error { return e.sentinel }

func errorf(sentinel error, format string, args ...any) error {
	return &wrapError{sentinel: sentinel, detail: fmt.Sprintf(format, args...)}
}

var _ = errors.Is
