package device

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenOptions tunes Open.
type OpenOptions struct {
	// Engine is "auto" (or ""): io_uring when io_uring_setup works, else the
	// thread pool, and the thread pool for a file on tmpfs (where io_uring
	// hands every operation to an io-wq thread: measured 2-3x slower than
	// the pool); "uring"; or "threads".
	Engine string
	// Create creates a missing image file (sparse, Size bytes) and grows an
	// existing smaller one to Size. Without Create, a positive Size is the
	// minimum size the image or device must have (ENOSPC otherwise).
	Create bool
	// Size: see Create.
	Size int64
	// ReadOnly opens the file read-only (writes then fail with EBADF in
	// their completion).
	ReadOnly bool
	// Exclusive takes flock(LOCK_EX|LOCK_NB); a file locked by another
	// process fails with an "in use" error wrapping EBUSY and EWOULDBLOCK.
	Exclusive bool
	// Logger receives one line naming the engine and the geometry, and a
	// warning when O_DIRECT was refused. nil: quiet.
	Logger *slog.Logger
	// QueueDepth bounds requests in the kernel at once (io_uring ring size,
	// thread-pool size, at most 64; more are queued). 0: 128 for io_uring, 32 threads.
	QueueDepth int
}

// DefaultMaxIO is the largest request the file and block-device engines accept.
const DefaultMaxIO = 1 << 20

// Open opens an image file or a block device for direct I/O. Errors wrap the
// errno (ENOENT, EISDIR, EACCES, ENOSPC, EINVAL, EBUSY, ...) and name the path.
func Open(path string, o OpenOptions) (Device, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, fmt.Errorf("device: open: empty path: %w", syscall.EINVAL)
	}
	if o.Size < 0 {
		return nil, fmt.Errorf("device: open %s: negative size %d: %w", path, o.Size, syscall.EINVAL)
	}
	engine := o.Engine
	switch engine {
	case "", "auto":
		engine = "auto"
	case "uring", "threads":
	default:
		return nil, fmt.Errorf("device: open %s: unknown engine %q (want auto, uring or threads): %w", path, o.Engine, syscall.EINVAL)
	}

	var st unix.Stat_t
	err := unix.Stat(path, &st)
	switch {
	case errors.Is(err, syscall.ENOENT) && o.Create:
	case err != nil:
		return nil, fmt.Errorf("device: open %s: %w", path, err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return nil, fmt.Errorf("device: open %s: is a directory, want an image file or a block device: %w", path, syscall.EISDIR)
	case st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFBLK:
		return nil, fmt.Errorf("device: open %s: not a regular file or block device: %w", path, syscall.EINVAL)
	}

	flags := unix.O_CLOEXEC
	if o.ReadOnly {
		flags |= unix.O_RDONLY
	} else {
		flags |= unix.O_RDWR
	}
	if o.Create {
		flags |= unix.O_CREAT
	}
	cached := false
	fd, err := unix.Open(path, flags|unix.O_DIRECT, 0o644)
	if errors.Is(err, syscall.EINVAL) {
		fd, err = unix.Open(path, flags, 0o644)
		if err == nil {
			cached = true
			log.Warn("device: the filesystem refused O_DIRECT; using the kernel page cache", "path", path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("device: open %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()

	if o.Exclusive {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("device: open %s: in use by another process (exclusive lock held): %w (%w)", path, syscall.EBUSY, err)
			}
			return nil, fmt.Errorf("device: open %s: flock: %w", path, err)
		}
	}

	info, err := geometry(fd, path, o)
	if err != nil {
		return nil, err
	}
	info.Cached = cached
	info.MaxIO = DefaultMaxIO

	var dev Device
	if engine == "auto" && isTmpfs(fd) {
		log.Info("device: tmpfs file: using the thread pool (io_uring would punt every request to io-wq)", "path", path)
		engine = "threads"
	}
	if engine == "auto" || engine == "uring" {
		ud, err := newUringDev(fd, info, o.QueueDepth)
		switch {
		case err == nil:
			dev = ud
		case engine == "uring":
			return nil, fmt.Errorf("device: open %s: io_uring engine: %w", path, err)
		default:
			log.Info("device: io_uring unavailable, using the thread pool", "path", path, "err", err)
		}
	}
	if dev == nil {
		dev = newThreadDev(fd, info, o.QueueDepth)
	}
	ok = true
	in := dev.Info()
	log.Info("device: opened", "path", path, "engine", in.Engine, "size", in.Size,
		"logical_block", in.LogicalBlockSize, "physical_block", in.PhysicalBlockSize,
		"mem_align", in.MemAlign, "cached", in.Cached)
	return dev, nil
}

// geometry reads size and alignments of an open image file or block device,
// creating or growing an image file to o.Size when o.Create.
func geometry(fd int, path string, o OpenOptions) (Info, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Info{}, fmt.Errorf("device: open %s: fstat: %w", path, err)
	}
	var in Info
	lbs, mem, pbs := 512, 512, 512
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		size := st.Size
		if o.Create && size < o.Size {
			if err := unix.Ftruncate(fd, o.Size); err != nil {
				return Info{}, fmt.Errorf("device: open %s: grow image to %d bytes: %w", path, o.Size, err)
			}
			size = o.Size
		}
		in.Size = size
		if m, off, ok := dioAlign(fd); ok {
			lbs, mem = off, m
		}
		pbs = max(lbs, 4096)
	case unix.S_IFBLK:
		var size uint64
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
			return Info{}, fmt.Errorf("device: open %s: BLKGETSIZE64: %w", path, e)
		}
		in.Size = int64(size)
		ss, err := unix.IoctlGetUint32(fd, unix.BLKSSZGET)
		if err != nil {
			return Info{}, fmt.Errorf("device: open %s: BLKSSZGET: %w", path, err)
		}
		ps, err := unix.IoctlGetUint32(fd, unix.BLKPBSZGET)
		if err != nil {
			return Info{}, fmt.Errorf("device: open %s: BLKPBSZGET: %w", path, err)
		}
		lbs, pbs, mem = int(ss), int(ps), int(ss)
		if m, _, ok := dioAlign(fd); ok {
			mem = m
		}
		if o.Create && o.Size > in.Size {
			return Info{}, fmt.Errorf("device: open %s: block device has %d bytes, %d requested: %w", path, in.Size, o.Size, syscall.ENOSPC)
		}
	default:
		return Info{}, fmt.Errorf("device: open %s: not a regular file or block device: %w", path, syscall.EINVAL)
	}
	if !pow2(lbs) || !pow2(mem) || lbs < 1 {
		return Info{}, fmt.Errorf("device: open %s: odd alignment (logical block %d, memory %d): %w", path, lbs, mem, syscall.EINVAL)
	}
	if !pow2(pbs) || pbs < lbs {
		pbs = lbs
	}
	in.LogicalBlockSize, in.PhysicalBlockSize, in.MemAlign = lbs, pbs, mem
	in.Size -= in.Size % int64(lbs)
	if o.Size > 0 && in.Size < o.Size {
		return Info{}, fmt.Errorf("device: open %s: too small: %d bytes, need %d: %w", path, in.Size, o.Size, syscall.ENOSPC)
	}
	if in.Size < int64(lbs) {
		return Info{}, fmt.Errorf("device: open %s: too small: %d bytes, need at least one %d-byte block (create it with a size): %w",
			path, in.Size, lbs, syscall.EINVAL)
	}
	return in, nil
}

// dioAlign asks statx for STATX_DIOALIGN; ok is false when the filesystem
// reports nothing (tmpfs, FUSE) or the kernel is too old.
func dioAlign(fd int) (mem, off int, ok bool) {
	var sx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx); err != nil {
		return 0, 0, false
	}
	if sx.Mask&unix.STATX_DIOALIGN == 0 || sx.Dio_mem_align == 0 || sx.Dio_offset_align == 0 {
		return 0, 0, false
	}
	return int(sx.Dio_mem_align), int(sx.Dio_offset_align), true
}

func pow2(n int) bool { return n > 0 && n&(n-1) == 0 }
