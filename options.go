package aiodio

import "log/slog"

// MkfsOptions configures Mkfs and MkfsDevice.
type MkfsOptions struct {
	// Size is the size of a new image file in bytes. 0 keeps an existing
	// file's size (and is an error for a file that does not exist yet).
	// Ignored for block devices.
	Size int64
	// BlockSize is the volume's allocation unit; a power of two between
	// the device's logical sector size and 64 KiB. Default 4096.
	BlockSize int
}

// HolePolicy says what a direct write does with blocks that are not yet
// allocated (holes inside the file, or the range past end of file).
type HolePolicy int

const (
	// Unwritten (the default) allocates the blocks as unwritten extents,
	// writes the data directly and converts the extents to written when the
	// data is on the device (the XFS design). Unwritten extents read as zeros.
	Unwritten HolePolicy = iota
	// BufferedFallback ends the direct part of a write at the first block
	// that would have to be instantiated inside the file size, waits for what
	// was submitted, and writes the remainder through the page cache, then
	// writes it back and waits (the 2003 Linux design).
	BufferedFallback
)

func (p HolePolicy) String() string {
	switch p {
	case Unwritten:
		return "unwritten"
	case BufferedFallback:
		return "buffered-fallback"
	}
	return "unknown"
}

// Options configures Open and OpenDevice.
type Options struct {
	// Engine selects the device backend for Open: "auto" (the default:
	// io_uring when usable, else a thread pool), "uring" or "threads".
	Engine string
	// CacheBytes limits the page cache of the whole volume. Default 256 MiB.
	CacheBytes int64
	// HolePolicy selects how direct writes fill holes. Default Unwritten.
	HolePolicy HolePolicy
	// StrictAlignment makes misaligned direct I/O fail with EINVAL like
	// Linux. When false (the default) misaligned memory goes through an
	// aligned bounce buffer and offsets and lengths that are not multiples of
	// the device's sector are served correctly (read-modify-write of the
	// edge sectors under block range locks).
	StrictAlignment bool
	// SerializeUnaligned lets only one sub-block direct write per file be
	// in flight at a time, as the 2011 ocfs2 fix did, instead of serializing
	// per block range (I6). It exists as the baseline for benchmarks
	// (`aiodio bench file --workload unaligned-4k-8writers`); correctness
	// never needs it.
	SerializeUnaligned bool
	// Logger receives the engine's few log lines; nil means quiet.
	Logger *slog.Logger
}
