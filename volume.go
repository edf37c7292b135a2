package aiodio

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/dio"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// MaxFileSize is the largest file offset aiodio accepts (1 EiB): an offset
// plus a length past it fails with EFBIG.
const MaxFileSize int64 = 1 << 60

// The page cache must accept every offset the API does (compile-time check:
// a negative difference overflows uint64).
const _ = uint64(pagecache.MaxFileSize-MaxFileSize) + uint64(MaxFileSize-pagecache.MaxFileSize)

// DefaultCacheBytes is the page cache limit when Options.CacheBytes is 0.
const DefaultCacheBytes = 256 << 20

// Mkfs writes an empty volume on the image file or block device at path.
//
// An image file that does not exist is created sparse with o.Size bytes
// (o.Size must then be positive); an existing image smaller than a positive
// o.Size is grown to it, and o.Size == 0 keeps an existing file's size.
// For a block device o.Size is ignored. Mkfs does not zero the data area
// (like any mkfs): data left there is never readable through the volume (I1).
// Mkfs fails with EBUSY if the volume is open.
func Mkfs(path string, o MkfsOptions) error {
	if o.Size < 0 {
		return &fs.PathError{Op: "mkfs", Path: path, Err: fmt.Errorf("negative size %d: %w", o.Size, syscall.EINVAL)}
	}
	oo := device.OpenOptions{Exclusive: true}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if o.Size == 0 {
			return &fs.PathError{Op: "mkfs", Path: path, Err: fmt.Errorf("image does not exist and MkfsOptions.Size is 0: %w", syscall.EINVAL)}
		}
		oo.Create, oo.Size = true, o.Size
	case err != nil:
		return &fs.PathError{Op: "mkfs", Path: path, Err: err}
	case st.Mode().IsRegular() && o.Size > 0:
		oo.Create, oo.Size = true, o.Size
	}
	dev, err := device.Open(path, oo)
	if err != nil {
		return fmt.Errorf("aiodio: mkfs %s: %w", path, err)
	}
	err = MkfsDevice(dev, o)
	if cerr := dev.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("aiodio: mkfs %s: close: %w", path, cerr)
	}
	if err != nil {
		return fmt.Errorf("aiodio: mkfs %s: %w", path, err)
	}
	return nil
}

// MkfsDevice writes an empty volume on d. It does not close d.
func MkfsDevice(d device.Device, o MkfsOptions) error {
	if d == nil {
		return fmt.Errorf("aiodio: mkfs: nil device: %w", syscall.EINVAL)
	}
	return meta.Mkfs(d, meta.MkfsOptions{BlockSize: o.BlockSize})
}

// Fsck checks the volume on the image file or block device at path without
// changing it. findings lists every inconsistency (empty when clean); err is
// set when the volume cannot be read at all (not an aiodio volume, newer
// version, unreadable metadata) or is open (EBUSY).
func Fsck(path string) (findings []string, err error) {
	dev, err := device.Open(path, device.OpenOptions{ReadOnly: true, Exclusive: true})
	if err != nil {
		return nil, fmt.Errorf("aiodio: fsck %s: %w", path, err)
	}
	defer dev.Close()
	return FsckDevice(dev)
}

// FsckDevice checks the volume on d (which must not be open as a Volume).
func FsckDevice(d device.Device) (findings []string, err error) {
	return meta.Fsck(d)
}

// Volume is an open aiodio volume: a namespace of files and directories on
// one device, with its page cache. All methods are safe for concurrent use.
//
// IMPORTANT: call Close. It drains in-flight I/O, writes back cached data and
// checkpoints the metadata; without it, what was not made durable by Sync is
// lost, as after a power cut (the volume itself stays consistent: I11).
type Volume struct {
	dev    device.Device
	ownDev bool // Open opened dev, Close closes it
	meta   *meta.FS
	cache  *pagecache.Cache
	dio    *dio.Engine
	opts   Options
	log    *slog.Logger
	name   string // image path, or the device's engine name

	bs   int64 // volume block size
	info device.Info

	// gate admits public calls and lets Close wait for them.
	gate gate

	// nsMu serializes namespace changes with opens (DESIGN §5 level 1,
	// the outermost lock): OpenFile, Remove and Rename hold it while they
	// resolve a name and update the open-inode table, so a file cannot be
	// removed between its lookup and its open.
	nsMu sync.Mutex

	// tabMu protects inodes and every inode's refs/closing fields. Nothing
	// else is taken while it is held, except, when an inode is created
	// (getInodeLocked), the metadata read lock and pagecache's Open.
	tabMu  sync.Mutex
	inodes map[meta.Ino]*inode

	// ringMu protects rings (the rings Close must drain).
	ringMu sync.Mutex
	rings  map[*Ring]struct{}

	// resv is the ledger of blocks reserved by buffered writes (reserve.go).
	resv reservations

	// zeros is a read-only zero buffer for zeroing through the cache.
	zeros []byte
}

// Open opens the volume on the image file or block device at path, taking an
// exclusive lock on it: a second Open of the same path, from this process or
// another, fails with an error wrapping EBUSY. An image that is not an aiodio
// volume (or of a newer version) is refused with an error wrapping EINVAL
// that says what was found.
func Open(path string, o Options) (*Volume, error) {
	dev, err := device.Open(path, device.OpenOptions{Engine: o.Engine, Exclusive: true, Logger: o.Logger})
	if err != nil {
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &inUseError{path: path, err: err}
		}
		return nil, fmt.Errorf("aiodio: open %s: %w", path, err)
	}
	v, err := openDevice(dev, o, path)
	if err != nil {
		dev.Close()
		return nil, err
	}
	v.ownDev = true
	return v, nil
}

// OpenDevice opens the volume on d. Close does not close d.
func OpenDevice(d device.Device, o Options) (*Volume, error) {
	if d == nil {
		return nil, fmt.Errorf("aiodio: open: nil device: %w", syscall.EINVAL)
	}
	return openDevice(d, o, d.Info().Engine+" device")
}

func openDevice(d device.Device, o Options, name string) (*Volume, error) {
	if o.CacheBytes < 0 {
		return nil, fmt.Errorf("aiodio: open %s: negative CacheBytes: %w", name, syscall.EINVAL)
	}
	if o.HolePolicy != Unwritten && o.HolePolicy != BufferedFallback {
		return nil, fmt.Errorf("aiodio: open %s: unknown hole policy %d: %w", name, int(o.HolePolicy), syscall.EINVAL)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := meta.Mount(d, meta.MountOptions{Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("aiodio: open %s: %w", name, err)
	}
	v := &Volume{
		dev:    d,
		meta:   m,
		opts:   o,
		log:    log,
		name:   name,
		bs:     int64(m.BlockSize()),
		info:   d.Info(),
		gate:   newGate(),
		inodes: make(map[meta.Ino]*inode),
		rings:  make(map[*Ring]struct{}),
		zeros:  make([]byte, 64<<10),
	}
	v.dio, err = dio.New(d, m, dio.Options{BlockSize: int(v.bs), HolePolicy: dio.HolePolicy(o.HolePolicy),
		StrictAlignment: o.StrictAlignment, SerializeUnaligned: o.SerializeUnaligned})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("aiodio: open %s: %w", name, err)
	}
	v.cache = pagecache.New(pagecache.Options{Limit: o.CacheBytes, Logger: o.Logger})
	return v, nil
}

// enter admits a public call; callers defer v.gate.exit().
func (v *Volume) enter() error {
	if !v.gate.enter() {
		return ErrVolumeClosed
	}
	return nil
}

// Mkdir creates the directory name with permission bits perm.
func (v *Volume) Mkdir(name string, perm fs.FileMode) error {
	if err := v.enter(); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	defer v.gate.exit()
	v.nsMu.Lock()
	defer v.nsMu.Unlock()
	_, err := v.meta.Mkdir(name, perm)
	return pathError("mkdir", name, err)
}

// Remove removes the file or empty directory name (ENOTEMPTY otherwise).
// Removing a file that is open drains its I/O and drops its cached data;
// later I/O through the open File fails with ErrRemoved (ESTALE).
func (v *Volume) Remove(name string) error {
	if err := v.enter(); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	defer v.gate.exit()
	v.nsMu.Lock()
	defer v.nsMu.Unlock()
	victim, err := v.detachLocked(name)
	if err != nil {
		return pathError("remove", name, err)
	}
	err = v.meta.Remove(name)
	victim.finish(err)
	return pathError("remove", name, err)
}

// Rename moves from to to, replacing an existing file (or empty directory,
// when from is a directory). Moving a directory into its own subtree fails
// with EINVAL. A replaced file that is open is treated as removed.
// Errors are *fs.PathError whose Path is "from -> to".
func (v *Volume) Rename(from, to string) error {
	p := from + " -> " + to
	if err := v.enter(); err != nil {
		return &fs.PathError{Op: "rename", Path: p, Err: err}
	}
	defer v.gate.exit()
	v.nsMu.Lock()
	defer v.nsMu.Unlock()
	var victim *detached
	if fi, ino, err := v.lookupAttr(to); err == nil && !fi.Mode.IsDir() {
		if src, err := v.meta.Lookup(from); err == nil && src != ino {
			if victim, err = v.detachLocked(to); err != nil {
				return pathError("rename", p, err)
			}
		}
	}
	err := v.meta.Rename(from, to)
	victim.finish(err)
	return pathError("rename", p, err)
}

func (v *Volume) lookupAttr(name string) (meta.Attr, meta.Ino, error) {
	ino, err := v.meta.Lookup(name)
	if err != nil {
		return meta.Attr{}, 0, err
	}
	a, err := v.meta.Attr(ino)
	return a, ino, err
}

// ReadDir lists the directory name, sorted by name.
func (v *Volume) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := v.enter(); err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	defer v.gate.exit()
	ents, err := v.meta.ReadDir(name)
	if err != nil {
		return nil, pathError("readdir", name, err)
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = &dirEntry{v: v, e: e}
	}
	return out, nil
}

// Stat returns the attributes of name. The size of an open file includes
// data still in the page cache.
func (v *Volume) Stat(name string) (fs.FileInfo, error) {
	if err := v.enter(); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	defer v.gate.exit()
	a, err := v.meta.Stat(name)
	if err != nil {
		return nil, pathError("stat", name, err)
	}
	return v.fileInfo(path.Base(name), a), nil
}

// FSStat is a volume's space and inode usage (see Volume.StatFS).
type FSStat struct {
	BlockSize int   // bytes per block
	Blocks    int64 // blocks of the data area (what files can own)
	Free      int64 // blocks allocatable now
	// Pending blocks were freed (truncate, hole punch, remove) and become
	// allocatable once the record that frees them is durable (the next
	// metadata commit, at the latest Sync).
	Pending int64
	Inodes  int64 // inodes in use (files and directories)
	// MetaBytes of MetaBudget bytes of in-memory metadata (inodes and
	// directory entries) are in use; creating past the budget fails with
	// ENOSPC.
	MetaBytes, MetaBudget int64
}

// StatFS returns the volume's space and inode usage, as statfs(2) reports
// a filesystem's. Data still in the page cache owns no blocks yet.
func (v *Volume) StatFS() (FSStat, error) {
	if err := v.enter(); err != nil {
		return FSStat{}, fmt.Errorf("aiodio: statfs: %w", err)
	}
	defer v.gate.exit()
	st := v.meta.Stats()
	return FSStat{
		BlockSize: st.BlockSize, Blocks: st.DataBlocks, Free: st.FreeBlocks, Pending: st.PendingBlocks,
		Inodes: st.Inodes, MetaBytes: st.MetaBytes, MetaBudget: st.MetaBudget,
	}, nil
}

// fileInfo builds the FileInfo of a, with the in-memory size of an open file.
func (v *Volume) fileInfo(name string, a meta.Attr) *fileInfo {
	if name == "." || name == "/" {
		name = "."
	}
	v.tabMu.Lock()
	in := v.inodes[a.Ino]
	v.tabMu.Unlock()
	if in != nil {
		a.Size = in.d.Size()
	}
	return &fileInfo{name: name, attr: a, bs: v.bs}
}

// Sync writes back every open file's cached data, then makes all metadata
// durable (data first, then the journal: O2). It returns the first
// writeback error not yet reported.
func (v *Volume) Sync() error {
	if err := v.enter(); err != nil {
		return fmt.Errorf("aiodio: sync: %w", err)
	}
	defer v.gate.exit()
	var errs []error
	for _, in := range v.openInodes() {
		if err := in.writeback(); err != nil {
			errs = append(errs, err)
		}
		v.putInode(in)
	}
	if err := v.meta.Commit(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("aiodio: sync: %w", err)
	}
	return nil
}

// openInodes returns the open inodes, each with a reference the caller drops
// with putInode.
func (v *Volume) openInodes() []*inode {
	v.tabMu.Lock()
	defer v.tabMu.Unlock()
	out := make([]*inode, 0, len(v.inodes))
	for _, in := range v.inodes {
		if !in.closing {
			in.refs++
			out = append(out, in)
		}
	}
	return out
}

// Fsck checks the open volume's metadata in memory (extents inside the data
// area, no block owned twice, free space, sizes against extents, directory
// links) and returns its findings, nil when consistent. The package-level
// Fsck checks a closed volume on its device.
func (v *Volume) Fsck() ([]string, error) {
	if err := v.enter(); err != nil {
		return nil, fmt.Errorf("aiodio: fsck: %w", err)
	}
	defer v.gate.exit()
	return v.meta.Check(), nil
}

// BlockSize returns the volume's block size in bytes.
func (v *Volume) BlockSize() int { return int(v.bs) }

// Close drains in-flight I/O (it waits for calls in progress and closes
// every Ring, which completes each accepted op), writes back every open
// file's cached data, commits and checkpoints the metadata, and closes the
// device if Open opened it. Files still open become unusable (EBADF).
// Close is idempotent; later calls on the Volume fail with EBADF.
func (v *Volume) Close() error {
	if !v.gate.close() {
		return nil
	}
	var errs []error
	v.ringMu.Lock()
	rings := make([]*Ring, 0, len(v.rings))
	for r := range v.rings {
		rings = append(rings, r)
	}
	v.ringMu.Unlock()
	for _, r := range rings {
		if err := r.Close(); err != nil && !errors.Is(err, ErrRingClosed) {
			errs = append(errs, err)
		}
	}
	v.tabMu.Lock()
	ins := make([]*inode, 0, len(v.inodes))
	for _, in := range v.inodes {
		ins = append(ins, in)
	}
	v.tabMu.Unlock()
	for _, in := range ins {
		if err := in.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := v.dio.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := v.cache.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := v.meta.Close(); err != nil {
		errs = append(errs, err)
	}
	if v.ownDev {
		if err := v.dev.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("aiodio: close %s: %w", v.name, err)
	}
	return nil
}

// fileInfo implements fs.FileInfo. Sys returns the meta.Attr-like Stat_t
// fields through *FileStat.
type fileInfo struct {
	name string
	attr meta.Attr
	bs   int64
}

// FileStat is what FileInfo.Sys returns for aiodio files.
type FileStat struct {
	Ino    uint64
	Nlink  uint32
	Blocks int64 // allocated bytes / 512, like stat(2)'s st_blocks
	Ctime  time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.attr.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.attr.Mode }
func (fi *fileInfo) ModTime() time.Time { return fi.attr.Mtime }
func (fi *fileInfo) IsDir() bool        { return fi.attr.Mode.IsDir() }
func (fi *fileInfo) Sys() any {
	return &FileStat{Ino: uint64(fi.attr.Ino), Nlink: fi.attr.Nlink, Blocks: fi.attr.Blocks * fi.bs / 512, Ctime: fi.attr.Ctime}
}

// dirEntry implements fs.DirEntry.
type dirEntry struct {
	v *Volume
	e meta.DirEntry
}

func (d *dirEntry) Name() string      { return d.e.Name }
func (d *dirEntry) IsDir() bool       { return d.e.Mode.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.e.Mode.Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	a, err := d.v.meta.Attr(d.e.Ino)
	if err != nil {
		return nil, pathError("stat", d.e.Name, err)
	}
	return d.v.fileInfo(d.e.Name, a), nil
}
