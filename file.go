package aiodio

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/aiodio/aiodio/internal/dio"
	"github.com/aiodio/aiodio/internal/meta"
	"golang.org/x/sys/unix"
)

// File is an open file of a Volume. Its methods are safe for concurrent use:
// ReadAt and WriteAt may run in parallel (io.ReaderAt / io.WriterAt rules:
// concurrent writes to overlapping ranges land in an unspecified order).
//
// IMPORTANT: call Close. The last Close of a file writes its cached data
// back; data written without O_DSYNC or Sync is durable only after Sync
// (or Volume.Sync/Close).
type File struct {
	v    *Volume
	in   *inode // nil for a directory
	ino  meta.Ino
	name string
	flag int

	rd, wr, direct, appendMode, dsync bool

	// gate admits calls and lets Close wait for them (and for this file's
	// ring ops, which enter it too).
	gate gate
}

// OpenFile opens name with flag (os.O_RDONLY, O_WRONLY or O_RDWR, plus
// os.O_CREATE, O_EXCL, O_TRUNC, O_APPEND, syscall.O_DIRECT, O_DSYNC, O_SYNC;
// other flags such as O_CLOEXEC are ignored) and, for a created file, the
// permission bits perm.
//
//   - O_DIRECT: ReadAt and WriteAt go straight between the caller's buffer and
//     the device (see Options.StrictAlignment and DIOAlign).
//   - O_DSYNC and O_SYNC: every write is durable (data and metadata) when it
//     returns.
//   - O_APPEND: every WriteAt writes at the end of the file, whatever its
//     offset argument (Linux's pwrite(2) behaviour on O_APPEND files).
//
// Directories can be opened read-only (for Stat); opening one for writing
// fails with EISDIR. Errors are *fs.PathError.
func (v *Volume) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	if err := v.enter(); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer v.gate.exit()
	f := &File{v: v, name: name, flag: flag, gate: newGate()}
	switch flag & unix.O_ACCMODE {
	case os.O_RDONLY:
		f.rd = true
	case os.O_WRONLY:
		f.wr = true
	case os.O_RDWR:
		f.rd, f.wr = true, true
	default:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	f.direct = flag&syscall.O_DIRECT != 0
	f.appendMode = flag&os.O_APPEND != 0
	f.dsync = flag&(unix.O_DSYNC|unix.O_SYNC) != 0

	v.nsMu.Lock()
	defer v.nsMu.Unlock()
	var ino meta.Ino
	var err error
	if flag&os.O_CREATE != 0 {
		ino, _, err = v.meta.Create(name, perm, flag&os.O_EXCL != 0)
	} else {
		ino, err = v.meta.Lookup(name)
	}
	if err != nil {
		return nil, pathError("open", name, err)
	}
	a, err := v.meta.Attr(ino)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	f.ino = ino
	if a.Mode.IsDir() {
		if f.wr || flag&os.O_TRUNC != 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
		}
		return f, nil
	}
	if !a.Mode.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	if f.in, err = v.getInodeLocked(ino); err != nil {
		return nil, pathError("open", name, err)
	}
	if flag&os.O_TRUNC != 0 && f.wr {
		if err := f.in.truncate(0); err != nil {
			v.putInode(f.in)
			return nil, pathError("open", name, err)
		}
	}
	return f, nil
}

// enter admits a call on f: the volume and the file must be open.
func (f *File) enter(op string) error {
	if f == nil {
		return &fs.PathError{Op: op, Path: "", Err: syscall.EINVAL}
	}
	if !f.v.gate.enter() {
		return &fs.PathError{Op: op, Path: f.name, Err: ErrVolumeClosed}
	}
	if !f.gate.enter() {
		f.v.gate.exit()
		return &fs.PathError{Op: op, Path: f.name, Err: ErrFileClosed}
	}
	return nil
}

func (f *File) exit() {
	f.gate.exit()
	f.v.gate.exit()
}

// Name returns the name the file was opened with.
func (f *File) Name() string { return f.name }

// checkRange validates an I/O range.
func checkRange(off int64, n int) error {
	if off < 0 || n < 0 {
		return ErrNegativeOffset
	}
	if off > MaxFileSize-int64(n) {
		return ErrFileTooLarge
	}
	return nil
}

// ReadAt reads len(p) bytes at off (io.ReaderAt): when it returns n < len(p)
// the error is non-nil, io.EOF at end of file. On a file opened O_DIRECT it
// reads from the device, after writing back dirty cached pages of the range
// (I5). Never-written ranges read as zeros (I1).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if err := f.enter("read"); err != nil {
		return 0, err
	}
	defer f.exit()
	if err := f.readCheck(p, off); err != nil {
		return 0, err
	}
	n, err := f.readAt(p, off)
	return n, pathError("read", f.name, err)
}

func (f *File) readCheck(p []byte, off int64) error {
	switch {
	case !f.rd:
		return &fs.PathError{Op: "read", Path: f.name, Err: ErrNotReadable}
	case f.in == nil:
		return &fs.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	case off < 0:
		return &fs.PathError{Op: "read", Path: f.name, Err: ErrNegativeOffset}
	}
	return nil
}

// readAt is ReadAt after validation; ring workers call it too.
func (f *File) readAt(p []byte, off int64) (int, error) {
	if f.direct {
		return f.in.readDirect(p, off, 0)
	}
	return f.in.readAt(p, off)
}

// WriteAt writes p at off (io.WriterAt: n < len(p) comes with an error).
// On a file opened O_DIRECT the data goes straight to the device; with
// O_DSYNC/O_SYNC it is durable when WriteAt returns. A full volume fails
// allocating writes with ENOSPC; overwrites of allocated blocks still work.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if err := f.enter("write"); err != nil {
		return 0, err
	}
	defer f.exit()
	if err := f.writeCheck(p, off); err != nil {
		return 0, err
	}
	n, err := f.writeAt(p, off, f.dsync)
	return n, pathError("write", f.name, err)
}

func (f *File) writeCheck(p []byte, off int64) error {
	switch {
	case !f.wr:
		return &fs.PathError{Op: "write", Path: f.name, Err: ErrNotWritable}
	case f.in == nil:
		return &fs.PathError{Op: "write", Path: f.name, Err: syscall.EISDIR}
	}
	if err := checkRange(off, len(p)); err != nil {
		return &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	return nil
}

// writeAt is WriteAt after validation; dsync asks for durability.
func (f *File) writeAt(p []byte, off int64, dsync bool) (int, error) {
	var n int
	var err error
	if f.direct {
		var flags uint32
		if dsync {
			flags = dio.DSync
		}
		n, err = f.in.writeDirect(p, off, f.appendMode, flags)
		dsync = false // the engine committed (I10)
	} else {
		n, _, err = f.in.writeAt(p, off, f.appendMode)
	}
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err == nil && dsync {
		err = f.in.dataSync()
	}
	return n, err
}

// Truncate changes the file's size. Growing adds a range that reads as
// zeros; shrinking frees the blocks past the new size. It waits for the
// file's in-flight direct I/O (I7).
func (f *File) Truncate(size int64) error {
	if err := f.enter("truncate"); err != nil {
		return err
	}
	defer f.exit()
	switch {
	case !f.wr:
		return &fs.PathError{Op: "truncate", Path: f.name, Err: ErrNotWritable}
	case f.in == nil:
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EISDIR}
	}
	if err := checkRange(size, 0); err != nil {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: err}
	}
	err := f.in.truncate(size)
	if err == nil && f.dsync {
		err = f.in.dataSync()
	}
	return pathError("truncate", f.name, err)
}

// Fallocate manipulates the file's allocation, like fallocate(2), with the
// Linux mode values of golang.org/x/sys/unix:
//
//   - 0: allocate [off, off+n) (reads zeros) and grow the size to off+n;
//   - FALLOC_FL_KEEP_SIZE: allocate without changing the size;
//   - FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE: free the whole blocks of the
//     range and zero the partial ones; the range reads as zeros;
//   - FALLOC_FL_ZERO_RANGE (optionally with KEEP_SIZE): the range reads as
//     zeros and stays allocated (without KEEP_SIZE the size grows to off+n).
//
// Other modes fail with EOPNOTSUPP. n must be positive (EINVAL). Fallocate
// waits for the file's in-flight direct I/O (I7).
func (f *File) Fallocate(mode uint32, off, n int64) error {
	if err := f.enter("fallocate"); err != nil {
		return err
	}
	defer f.exit()
	perr := func(err error) error { return &fs.PathError{Op: "fallocate", Path: f.name, Err: err} }
	switch {
	case !f.wr:
		return perr(ErrNotWritable)
	case f.in == nil:
		return perr(syscall.EISDIR)
	case off < 0 || n <= 0:
		return perr(fmt.Errorf("offset %d length %d: %w", off, n, syscall.EINVAL))
	case off > MaxFileSize-n:
		return perr(ErrFileTooLarge)
	}
	var err error
	switch mode {
	case 0, unix.FALLOC_FL_KEEP_SIZE:
		err = f.in.allocate(off, n, mode != 0)
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE:
		err = f.in.punch(off, n, false, true)
	case unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE:
		err = f.in.punch(off, n, true, mode&unix.FALLOC_FL_KEEP_SIZE != 0)
	default:
		return perr(fmt.Errorf("mode %#x: %w", mode, syscall.EOPNOTSUPP))
	}
	if err == nil && f.dsync {
		err = f.in.dataSync()
	}
	return pathError("fallocate", f.name, err)
}

// Sync writes back the file's cached data, waits for it, and makes the
// file's data and metadata durable (data first, then the journal: O2).
// A writeback error that happened since the previous Sync of this file,
// also in the background, is reported once (like Linux's errseq).
func (f *File) Sync() error {
	if err := f.enter("sync"); err != nil {
		return err
	}
	defer f.exit()
	if f.in == nil {
		return pathError("sync", f.name, f.v.meta.Commit())
	}
	return pathError("sync", f.name, f.in.sync())
}

// Stat returns the file's attributes; the size includes cached data.
func (f *File) Stat() (fs.FileInfo, error) {
	if err := f.enter("stat"); err != nil {
		return nil, err
	}
	defer f.exit()
	a, err := f.v.meta.Attr(f.ino)
	if err != nil {
		if f.in != nil && f.in.removed.Load() {
			err = ErrRemoved
		}
		return nil, pathError("stat", f.name, err)
	}
	return f.v.fileInfo(path.Base(f.name), a), nil
}

// DIOAlign returns the alignments direct I/O needs, like statx's
// STATX_DIOALIGN: mem for buffer addresses, offset for file offsets and
// lengths (the device's logical sector size). Both are powers of two. With
// Options.StrictAlignment false, misaligned direct I/O is still served
// (through bounce buffers and read-modify-write), only slower.
func (f *File) DIOAlign() (mem, offset int) {
	return f.v.info.MemAlign, f.v.info.LogicalBlockSize
}

// Close closes the file. It waits for the file's calls and ring ops in
// progress; the last Close of an inode writes its cached data back and
// returns the writeback errors not yet reported. A second Close fails with
// ErrFileClosed (matching fs.ErrClosed and EBADF).
func (f *File) Close() error {
	if f == nil {
		return &fs.PathError{Op: "close", Err: syscall.EINVAL}
	}
	if !f.gate.close() {
		return &fs.PathError{Op: "close", Path: f.name, Err: ErrFileClosed}
	}
	if f.in == nil {
		return nil
	}
	if !f.v.gate.enter() {
		return nil // Volume.Close wrote everything back
	}
	defer f.v.gate.exit()
	return pathError("close", f.name, f.v.putInode(f.in))
}
