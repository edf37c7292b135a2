package aiodio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device/sim"
	"golang.org/x/sys/unix"
)

// FuzzAPI decodes its input into a short program (up to fuzzMaxSteps calls)
// of public API calls with fuzzer-chosen arguments and runs it against a
// fresh few-MiB volume on a poisoned in-memory sim device with a small page
// cache. The first byte picks the volume's options (block size,
// StrictAlignment, HolePolicy, SerializeUnaligned); every following step is
// one call: Volume.OpenFile (any flag combination, any perm, names such as
// "", ".", "..", "/a", "a//b", over-long elements), File.ReadAt/WriteAt
// (negative, huge, near-MaxFileSize and unaligned offsets, zero, odd and
// larger-than-the-volume lengths, buffers misaligned by slicing an
// AlignedBuffer), Truncate, Fallocate (any mode bits), Sync, Stat, Close
// (twice, and use after Close, and calls on a nil *File), the namespace
// calls (Mkdir, Remove, Rename, Stat, ReadDir, Sync, Fsck), NewRing (0,
// negative, too many entries), Ring.Submit (any Code, unknown Flags,
// RWF_NOWAIT, RWF_DSYNC, nil File, misaligned or nil buffers), Ring.Wait
// (any min and len(out)), Ring.Close, and Volume.Close in the middle of the
// program.
//
// It checks, for every step (I12, I1, I2):
//   - nothing panics or hangs (Ring.Wait runs under a generous deadline);
//   - every error carries a syscall.Errno (errors.As), except io.EOF from
//     reads at end of file;
//   - the io.ReaderAt/io.WriterAt contracts (0 <= n <= len(p), a short count
//     comes with an error) for calls and for ring completions;
//   - no read, synchronous or asynchronous, returns the device's poison
//     (stale data, I1);
//   - every op accepted by Submit completes exactly once (I2);
//   - for a buffered file created or truncated through a handle in this
//     program, reads through that handle return what a simple model of the
//     file (writes, truncates, preallocation, hole punching, zeroing)
//     predicts, as long as nothing else could have changed the file;
//   - at the end, with everything closed, fsck of the live volume and of the
//     device is clean.
func FuzzAPI(f *testing.F) {
	for _, seed := range fuzzAPISeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runAPIProgram(t, data)
	})
}

const (
	fuzzMaxSteps  = 40
	fuzzVolSize   = 4 << 20
	fuzzMaxLen    = fuzzVolSize + 1<<20 // larger than the volume
	fuzzFileSlots = 4
	fuzzRingSlots = 2
	fuzzWaitLimit = 2 * time.Minute // a hang, not a timing assertion
)

// Opcodes of a program step.
const (
	fzOpen = iota
	fzRead
	fzWrite
	fzTruncate
	fzFallocate
	fzSync
	fzClose
	fzStat
	fzMkdir
	fzRemove
	fzRename
	fzVolStat
	fzReadDir
	fzVolSync
	fzNewRing
	fzSubmit
	fzWait
	fzRingClose
	fzFsck
	fzVolClose
	fzNumOps
)

// fuzzNames are the names a program picks from: a few valid ones that
// collide, and invalid ones.
var fuzzNames = []string{
	"a", "b", "d", "d/f", "d/e", "a/x", "", ".", "..", "/a", "a/", "a//b",
	"d/../a", "./a", strings.Repeat("n", 255), strings.Repeat("l", 256),
	"d/" + strings.Repeat("m", 300), "nul\x00", "e", "d/e/g",
}

// fuzzProg reads a program's arguments from the fuzz input; past the end it
// reads zeros.
type fuzzProg struct{ b []byte }

func (p *fuzzProg) done() bool { return len(p.b) == 0 }

func (p *fuzzProg) u8() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *fuzzProg) u16() uint16 { return uint16(p.u8()) | uint16(p.u8())<<8 }
func (p *fuzzProg) u32() uint32 { return uint32(p.u16()) | uint32(p.u16())<<16 }
func (p *fuzzProg) u64() uint64 { return uint64(p.u32()) | uint64(p.u32())<<32 }

// off returns an offset (or a size, or a length of Fallocate).
func (p *fuzzProg) off() int64 {
	switch p.u8() % 10 {
	case 0:
		return 0
	case 1:
		return int64(p.u16())
	case 2:
		return 4096 * int64(p.u8())
	case 3:
		return -1 - int64(p.u16())
	case 4:
		return MaxFileSize - int64(p.u16())
	case 5:
		return int64(p.u64())
	case 6:
		return fuzzVolSize + int64(int16(p.u16()))
	case 7:
		return 1 << (p.u8() % 63)
	case 8:
		return 512*int64(p.u8()) + int64(p.u8()%3) - 1
	default:
		return math.MaxInt64 - int64(p.u8())
	}
}

// length returns a buffer length in [0, fuzzMaxLen].
func (p *fuzzProg) length() int {
	switch p.u8() % 7 {
	case 0:
		return 0
	case 1:
		return int(p.u8())
	case 2:
		return int(p.u16())
	case 3:
		return 4096 * int(p.u8()%17)
	case 4:
		n := 512*int(p.u8()%32) + int(p.u8()%3) - 1
		return max(n, 0)
	case 5:
		return fuzzMaxLen - int(p.u8())
	default:
		return 1 + int(p.u8()%8)
	}
}

func (p *fuzzProg) name() string { return fuzzNames[int(p.u8())%len(fuzzNames)] }

func (p *fuzzProg) perm() fs.FileMode {
	if p.u8()%4 == 0 {
		return fs.FileMode(p.u32()) // type bits too
	}
	return 0o644
}

// flag returns an OpenFile flag built from fuzzer-chosen bits.
func (p *fuzzProg) flag() int {
	b := p.u16()
	fl := int(b & 3) // O_RDONLY, O_WRONLY, O_RDWR, or the invalid 3
	bits := []int{os.O_CREATE, os.O_EXCL, os.O_TRUNC, os.O_APPEND, syscall.O_DIRECT,
		unix.O_DSYNC, os.O_SYNC, syscall.O_CLOEXEC, syscall.O_NOATIME, syscall.O_NONBLOCK}
	for i, bit := range bits {
		if b&(4<<i) != 0 {
			fl |= bit
		}
	}
	return fl
}

// fuzzModel is the expected content of a buffered file: a size and sparse
// pages (a missing page reads as zeros).
type fuzzModel struct {
	size  int64
	pages map[int64]*[fuzzPage]byte
}

const fuzzPage = 4096

func newFuzzModel() *fuzzModel { return &fuzzModel{pages: map[int64]*[fuzzPage]byte{}} }

func (m *fuzzModel) write(p []byte, off int64) {
	if len(p) == 0 {
		return // pwrite(2) of nothing does not extend the file
	}
	for i := 0; i < len(p); {
		o := off + int64(i)
		pg, in := o/fuzzPage, int(o%fuzzPage)
		page := m.pages[pg]
		if page == nil {
			page = new([fuzzPage]byte)
			m.pages[pg] = page
		}
		i += copy(page[in:], p[i:])
	}
	m.size = max(m.size, off+int64(len(p)))
}

// zero zeros [off, off+n) (clipped to the pages that exist).
func (m *fuzzModel) zero(off, n int64) {
	end := off + n
	for pg, page := range m.pages {
		ps, pe := pg*fuzzPage, pg*fuzzPage+fuzzPage
		s, e := max(ps, off), min(pe, end)
		if s >= e {
			continue
		}
		if s == ps && e == pe {
			delete(m.pages, pg)
			continue
		}
		clear(page[s-ps : e-ps])
	}
}

func (m *fuzzModel) truncate(size int64) {
	if size < m.size {
		m.zero(size, m.size-size)
	}
	m.size = size
}

// read returns the expected bytes of a read of n bytes at off.
func (m *fuzzModel) read(off int64, n int) []byte {
	if off >= m.size {
		return nil
	}
	n = int(min(int64(n), m.size-off))
	out := make([]byte, n)
	for i := 0; i < n; {
		o := off + int64(i)
		pg, in := o/fuzzPage, int(o%fuzzPage)
		c := min(fuzzPage-in, n-i)
		if page := m.pages[pg]; page != nil {
			copy(out[i:i+c], page[in:in+c])
		}
		i += c
	}
	return out
}

type fuzzFile struct {
	f      *File
	name   string
	flag   int
	model  *fuzzModel // nil: not modelled
	append bool
}

type fuzzRing struct {
	r *Ring
	// pending are the accepted ops not yet completed, by UserData.
	pending map[uint64]fuzzPending
	// fn: a function ring (NewRingFunc), whose function appends to got;
	// the program's goroutine checks them at its Wait steps and at the end.
	fn bool
	// mu protects got.
	mu  sync.Mutex
	got []Completion
}

// take returns and forgets the completions a function ring delivered.
func (fr *fuzzRing) take() []Completion {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	g := fr.got
	fr.got = nil
	return g
}

type fuzzPending struct {
	code OpCode
	buf  []byte
}

type fuzzRun struct {
	t      *testing.T
	v      *Volume
	step   int
	what   string
	closed bool // Volume.Close was called
	files  [fuzzFileSlots]*fuzzFile
	all    []*File
	rings  [fuzzRingSlots]*fuzzRing
	allR   []*fuzzRing
	nextUD uint64
	rbuf   []byte
	wbuf   []byte
	wfill  byte
	ctx    context.Context
}

// checkErr fails the test unless err is nil, carries a syscall.Errno, or is
// io.EOF where eofOK.
func (r *fuzzRun) checkErr(err error, eofOK bool) {
	r.t.Helper()
	if err == nil {
		return
	}
	if eofOK && errors.Is(err, io.EOF) {
		return
	}
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 {
		return
	}
	r.t.Fatalf("step %d %s: error without a syscall.Errno: %v (%#v)", r.step, r.what, err, err)
}

func (r *fuzzRun) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("step %d %s: %s", r.step, r.what, fmt.Sprintf(format, args...))
}

// noPoison fails if b holds the device's poison (stale data, I1). Written
// data never contains it: fill bytes have the high bit set.
func (r *fuzzRun) noPoison(b []byte) {
	r.t.Helper()
	if i := bytes.Index(b, poison[:4]); i >= 0 {
		r.fail("poison bytes at %d of the read (stale data, I1)", i)
	}
}

// untrackOthers drops the model of every file slot but keep (-1: all):
// a change through another handle or the namespace may have touched it.
func (r *fuzzRun) untrackOthers(keep int) {
	for i, ff := range r.files {
		if ff != nil && i != keep {
			ff.model = nil
		}
	}
}

func (r *fuzzRun) file(p *fuzzProg) (int, *fuzzFile, *File) {
	i := int(p.u8()) % (fuzzFileSlots + 1)
	if i == fuzzFileSlots || r.files[i] == nil {
		return -1, nil, nil // a nil *File
	}
	return i, r.files[i], r.files[i].f
}

// buf returns a slice of b of n bytes starting at a fuzzer-chosen
// misalignment.
func (p *fuzzProg) buf(b []byte, n int) []byte {
	mis := int(p.u8() % 8)
	if mis == 7 {
		mis = 511
	}
	if mis+n > len(b) {
		mis = 0
	}
	return b[mis : mis+n]
}

func (r *fuzzRun) fill(b []byte) {
	r.wfill++
	for i := range b {
		b[i] = 0x80 | (r.wfill*31+byte(i))&0x7f
	}
}

func runAPIProgram(t *testing.T, data []byte) {
	p := &fuzzProg{b: data}
	hdr := p.u8()
	bs := []int{0, 512, 4096, 8192}[hdr&3]
	o := Options{
		CacheBytes:         256 << 10,
		StrictAlignment:    hdr&4 != 0,
		SerializeUnaligned: hdr&16 != 0,
	}
	if hdr&8 != 0 {
		o.HolePolicy = BufferedFallback
	}
	d := sim.New(sim.Options{Size: fuzzVolSize, Seed: int64(hdr)})
	d.Poison(poison)
	if err := MkfsDevice(d, MkfsOptions{BlockSize: bs}); err != nil {
		d.Close()
		t.Fatalf("mkfs (block size %d): %v", bs, err)
	}
	v, err := OpenDevice(d, o)
	if err != nil {
		d.Close()
		t.Fatalf("open: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fuzzWaitLimit)
	r := &fuzzRun{t: t, v: v, ctx: ctx,
		rbuf: AlignedBuffer(fuzzMaxLen + 512), wbuf: AlignedBuffer(fuzzMaxLen + 512)}
	defer func() {
		// On a failure path, still release what the program made.
		cancel()
		if !r.closed {
			v.Close()
		}
		d.Close()
	}()

	for r.step = 0; r.step < fuzzMaxSteps && !p.done(); r.step++ {
		r.what = "(no call)"
		r.runStep(p)
		if testing.Verbose() {
			t.Logf("step %d: %s", r.step, r.what)
		}
	}
	r.step = -1
	r.what = "final close"
	for _, fr := range r.allR {
		r.checkErr(fr.r.Close(), false)
		r.drain(fr, 0, 16)
		for ud := range fr.pending {
			r.fail("op %d accepted by Submit never completed (I2)", ud)
		}
	}
	for _, f := range r.all {
		if err := f.Close(); err != nil && !errors.Is(err, ErrFileClosed) {
			r.checkErr(err, false)
			// A writeback error (ENOSPC) is reported by Close; fine.
		}
	}
	if !r.closed {
		findings, err := v.Fsck()
		if err != nil {
			t.Fatalf("live fsck: %v", err)
		}
		if len(findings) > 0 {
			t.Fatalf("live fsck: %q", findings)
		}
		r.closed = true
		r.checkErr(v.Close(), false)
	}
	findings, err := FsckDevice(d)
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	if len(findings) > 0 {
		t.Fatalf("fsck: %q", findings)
	}
}

// drain reaps completions of fr with Wait(min, out of outLen) until none
// is left, checking each.
func (r *fuzzRun) drain(fr *fuzzRing, min, outLen int) {
	if fr.fn {
		for _, c := range fr.take() {
			r.completion(fr, c)
		}
		return
	}
	out := make([]Completion, outLen)
	for {
		n, err := fr.r.Wait(r.ctx, min, out)
		if errors.Is(err, context.DeadlineExceeded) {
			r.fail("Ring.Wait(%d, %d slots): no completion within %v (hang?)", min, outLen, fuzzWaitLimit)
		}
		r.checkErr(err, false)
		if n < 0 || n > len(out) {
			r.fail("Ring.Wait returned n=%d with %d slots", n, len(out))
		}
		for _, c := range out[:n] {
			r.completion(fr, c)
		}
		if n == 0 || min > 0 {
			return
		}
	}
}

func (r *fuzzRun) completion(fr *fuzzRing, c Completion) {
	op, ok := fr.pending[c.UserData]
	if !ok {
		r.fail("completion of unknown or already completed op %d (I2): %+v", c.UserData, c)
	}
	delete(fr.pending, c.UserData)
	r.checkErr(c.Err, op.code == OpRead)
	switch op.code {
	case OpRead, OpWrite:
		if c.N < 0 || c.N > len(op.buf) {
			r.fail("%v completion N=%d for a %d-byte buffer", op.code, c.N, len(op.buf))
		}
		if c.N < len(op.buf) && c.Err == nil {
			r.fail("%v completion N=%d < %d without an error", op.code, c.N, len(op.buf))
		}
		if op.code == OpRead {
			r.noPoison(op.buf[:c.N])
		}
	case OpFsync:
		if c.N != 0 {
			r.fail("fsync completion N=%d", c.N)
		}
	}
}

func (r *fuzzRun) runStep(p *fuzzProg) {
	v := r.v
	op := int(p.u8()) % fzNumOps
	switch op {
	case fzOpen:
		name, flag, perm := p.name(), p.flag(), p.perm()
		slot := int(p.u8()) % fuzzFileSlots
		r.what = fmt.Sprintf("OpenFile(%q, %#x, %v)", name, flag, perm)
		if flag&os.O_TRUNC != 0 {
			r.untrackOthers(-1)
		}
		f, err := v.OpenFile(name, flag, perm)
		r.checkErr(err, false)
		if err != nil {
			if f != nil {
				r.fail("non-nil File with error %v", err)
			}
			return
		}
		if f == nil {
			r.fail("nil File without an error")
		}
		r.all = append(r.all, f)
		ff := &fuzzFile{f: f, name: name, flag: flag, append: flag&os.O_APPEND != 0}
		created := flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL
		trunc := flag&os.O_TRUNC != 0 && flag&3 != os.O_RDONLY
		if flag&3 == os.O_RDWR && flag&syscall.O_DIRECT == 0 && (created || trunc) {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				ff.model = newFuzzModel()
			}
		}
		r.files[slot] = ff
		if mem, off := f.DIOAlign(); mem <= 0 || off <= 0 || mem&(mem-1) != 0 || off&(off-1) != 0 {
			r.fail("DIOAlign() = %d, %d", mem, off)
		}
		if f.Name() != name {
			r.fail("Name() = %q", f.Name())
		}

	case fzRead:
		slot, ff, f := r.file(p)
		n, off := p.length(), p.off()
		b := p.buf(r.rbuf, n)
		r.what = fmt.Sprintf("ReadAt(slot %d, %d bytes at %d)", slot, n, off)
		got, err := f.ReadAt(b, off)
		r.checkErr(err, true)
		if got < 0 || got > len(b) {
			r.fail("n=%d for %d bytes", got, len(b))
		}
		if got < len(b) && err == nil {
			r.fail("short read n=%d without an error", got)
		}
		r.noPoison(b[:got])
		if ff == nil || ff.model == nil || (err != nil && !errors.Is(err, io.EOF)) {
			return
		}
		want := ff.model.read(off, len(b))
		if got != len(want) {
			r.fail("n=%d, model says %d (size %d)", got, len(want), ff.model.size)
		}
		if got < len(b) && !errors.Is(err, io.EOF) {
			r.fail("short read n=%d with %v, want io.EOF", got, err)
		}
		if !bytes.Equal(b[:got], want) {
			i := 0
			for i < got && b[i] == want[i] {
				i++
			}
			r.fail("data differs from the model at byte %d (file offset %d): got %#x want %#x", i, off+int64(i), b[i], want[i])
		}

	case fzWrite:
		slot, ff, f := r.file(p)
		n, off := p.length(), p.off()
		b := p.buf(r.wbuf, n)
		r.fill(b)
		r.what = fmt.Sprintf("WriteAt(slot %d, %d bytes at %d)", slot, n, off)
		r.untrackOthers(slot)
		var at int64
		if ff != nil && ff.model != nil {
			at = off
			if ff.append {
				at = ff.model.size
			}
		}
		got, err := f.WriteAt(b, off)
		r.checkErr(err, false)
		if got < 0 || got > len(b) {
			r.fail("n=%d for %d bytes", got, len(b))
		}
		if got < len(b) && err == nil {
			r.fail("short write n=%d without an error", got)
		}
		if ff != nil && ff.model != nil {
			if err != nil {
				ff.model = nil // partial progress: not modelled
			} else {
				ff.model.write(b, at)
			}
		}

	case fzTruncate:
		slot, ff, f := r.file(p)
		size := p.off()
		r.what = fmt.Sprintf("Truncate(slot %d, %d)", slot, size)
		r.untrackOthers(slot)
		err := f.Truncate(size)
		r.checkErr(err, false)
		if ff != nil && ff.model != nil {
			if err != nil {
				ff.model = nil
			} else {
				ff.model.truncate(size)
			}
		}

	case fzFallocate:
		slot, ff, f := r.file(p)
		modes := []uint32{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
			unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE,
			unix.FALLOC_FL_PUNCH_HOLE, unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE}
		sel := p.u8()
		var mode uint32
		if int(sel) < len(modes)*30 {
			mode = modes[int(sel)%len(modes)]
		} else {
			mode = p.u32()
		}
		off, n := p.off(), p.off()
		if p.u8()%2 == 0 {
			n = int64(p.length())
		}
		r.what = fmt.Sprintf("Fallocate(slot %d, %#x, %d, %d)", slot, mode, off, n)
		r.untrackOthers(slot)
		err := f.Fallocate(mode, off, n)
		r.checkErr(err, false)
		if ff == nil || ff.model == nil {
			return
		}
		if err != nil {
			ff.model = nil
			return
		}
		m := ff.model
		switch mode {
		case 0:
			m.size = max(m.size, off+n)
		case unix.FALLOC_FL_KEEP_SIZE:
		case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE:
			m.zero(off, n)
		case unix.FALLOC_FL_ZERO_RANGE:
			m.zero(off, n)
			m.size = max(m.size, off+n)
		default:
			r.fail("mode %#x succeeded; the doc says EOPNOTSUPP", mode)
		}

	case fzSync:
		slot, _, f := r.file(p)
		r.what = fmt.Sprintf("Sync(slot %d)", slot)
		r.checkErr(f.Sync(), false)

	case fzClose:
		slot, _, f := r.file(p)
		r.what = fmt.Sprintf("Close(slot %d)", slot)
		r.checkErr(f.Close(), false) // the slot stays: later calls use a closed File

	case fzStat:
		slot, ff, f := r.file(p)
		r.what = fmt.Sprintf("File.Stat(slot %d)", slot)
		fi, err := f.Stat()
		r.checkErr(err, false)
		if err == nil && ff != nil && ff.model != nil && fi.Size() != ff.model.size {
			r.fail("size %d, model says %d", fi.Size(), ff.model.size)
		}

	case fzMkdir:
		name, perm := p.name(), p.perm()
		r.what = fmt.Sprintf("Mkdir(%q, %v)", name, perm)
		r.checkErr(v.Mkdir(name, perm), false)

	case fzRemove:
		name := p.name()
		r.what = fmt.Sprintf("Remove(%q)", name)
		r.untrackOthers(-1)
		r.checkErr(v.Remove(name), false)

	case fzRename:
		from, to := p.name(), p.name()
		r.what = fmt.Sprintf("Rename(%q, %q)", from, to)
		r.untrackOthers(-1)
		r.checkErr(v.Rename(from, to), false)

	case fzVolStat:
		name := p.name()
		r.what = fmt.Sprintf("Volume.Stat(%q)", name)
		fi, err := v.Stat(name)
		r.checkErr(err, false)
		if err == nil && fi == nil {
			r.fail("nil FileInfo without an error")
		}

	case fzReadDir:
		name := p.name()
		r.what = fmt.Sprintf("ReadDir(%q)", name)
		ents, err := v.ReadDir(name)
		r.checkErr(err, false)
		for _, e := range ents {
			_, err := e.Info()
			r.checkErr(err, false)
		}

	case fzVolSync:
		r.what = "Volume.Sync"
		r.checkErr(v.Sync(), false)

	case fzNewRing:
		var n int
		switch sel := p.u8(); sel % 8 {
		case 0:
			n = 0
		case 1:
			n = -1 - int(p.u16())
		case 2:
			n = MaxRingEntries + 1 + int(p.u8())
		case 3:
			n = math.MaxInt - int(p.u8())
		case 4:
			n = math.MinInt
		default:
			n = 1 + int(p.u8()%8)
		}
		slot := int(p.u8()) % fuzzRingSlots
		fr := &fuzzRing{pending: map[uint64]fuzzPending{}, fn: p.u8()%3 == 0}
		var rg *Ring
		var err error
		if fr.fn {
			r.what = fmt.Sprintf("NewRingFunc(%d)", n)
			rg, err = v.NewRingFunc(n, func(c Completion) {
				fr.mu.Lock()
				fr.got = append(fr.got, c)
				fr.mu.Unlock()
			})
		} else {
			r.what = fmt.Sprintf("NewRing(%d)", n)
			rg, err = v.NewRing(n)
		}
		r.checkErr(err, false)
		if err != nil {
			return
		}
		if rg.Entries() != n {
			r.fail("Entries() = %d", rg.Entries())
		}
		fr.r = rg
		r.rings[slot] = fr
		r.allR = append(r.allR, fr)

	case fzSubmit:
		fr := r.rings[int(p.u8())%fuzzRingSlots]
		nops := int(p.u8() % 5)
		ops := make([]Op, nops)
		for i := range ops {
			o := &ops[i]
			switch c := p.u8(); c % 5 {
			case 0, 1, 2:
				o.Code = OpCode(c % 5)
			case 3:
				o.Code = OpCode(int8(p.u8()))
			default:
				o.Code = OpCode(math.MinInt + int(p.u8()))
			}
			_, _, o.File = r.file(p)
			switch fl := p.u8(); fl % 6 {
			case 0, 1:
				o.Flags = 0
			case 2:
				o.Flags = unix.RWF_NOWAIT
			case 3:
				o.Flags = unix.RWF_DSYNC
			case 4:
				o.Flags = unix.RWF_NOWAIT | unix.RWF_DSYNC
			default:
				o.Flags = p.u32()
			}
			o.Off = p.off()
			if n := p.length(); p.u8()%8 != 0 {
				// A fresh buffer per op: it belongs to the ring until
				// completion. Bounded so that a program stays small.
				n = min(n, 256<<10)
				o.Buf = p.buf(AlignedBuffer(n+512), n)
				r.fill(o.Buf)
			}
			r.nextUD++
			o.UserData = r.nextUD
		}
		if fr == nil {
			r.what = "Submit on no ring"
			return
		}
		r.what = fmt.Sprintf("Submit(%d ops)", nops)
		for _, o := range ops {
			if o.Code == OpWrite {
				r.untrackOthers(-1) // async: ordered against nothing
			}
		}
		n, err := fr.r.Submit(ops...)
		r.checkErr(err, false)
		if n < 0 || n > len(ops) || (n < len(ops)) != (err != nil) {
			r.fail("Submit accepted %d of %d ops, err %v", n, len(ops), err)
		}
		for _, o := range ops[:n] {
			fr.pending[o.UserData] = fuzzPending{code: o.Code, buf: o.Buf}
		}

	case fzWait:
		fr := r.rings[int(p.u8())%fuzzRingSlots]
		var min int
		switch sel := p.u8(); sel % 6 {
		case 0:
			min = 0
		case 1:
			min = -1 - int(p.u8())
		case 2:
			min = math.MaxInt
		default:
			min = int(sel % 5)
		}
		outLen := int(p.u8() % 9)
		if fr == nil {
			return
		}
		r.what = fmt.Sprintf("Wait(%d, %d slots)", min, outLen)
		if fr.fn {
			// A function ring has no Wait; check what it delivered.
			_, err := fr.r.Wait(r.ctx, min, make([]Completion, outLen))
			if !errors.Is(err, syscall.EINVAL) {
				r.fail("Wait on a function ring: %v, want EINVAL", err)
			}
			r.drain(fr, 0, 0)
			return
		}
		out := make([]Completion, outLen)
		n, err := fr.r.Wait(r.ctx, min, out)
		if errors.Is(err, context.DeadlineExceeded) {
			r.fail("no completion within %v (hang?)", fuzzWaitLimit)
		}
		r.checkErr(err, false)
		if n < 0 || n > len(out) {
			r.fail("n=%d with %d slots", n, len(out))
		}
		if err == nil && min >= 0 && min <= len(out) && n < min && len(fr.pending) > n {
			// Fewer than min only when nothing is left in flight.
			r.fail("n=%d < min %d with %d ops pending and no error", n, min, len(fr.pending))
		}
		for _, c := range out[:n] {
			r.completion(fr, c)
		}

	case fzRingClose:
		fr := r.rings[int(p.u8())%fuzzRingSlots]
		if fr == nil {
			return
		}
		r.what = "Ring.Close"
		r.checkErr(fr.r.Close(), false)

	case fzFsck:
		r.what = "Volume.Fsck"
		findings, err := v.Fsck()
		r.checkErr(err, false)
		if len(findings) > 0 {
			r.fail("findings: %q", findings)
		}

	case fzVolClose:
		if p.u8()%4 != 0 {
			return
		}
		r.what = "Volume.Close"
		r.closed = true
		r.checkErr(v.Close(), false)
	}
}

// fuzzAPISeeds returns hand-written programs that exercise every call
// kind, with good and clearly bad arguments.
func fuzzAPISeeds() [][]byte {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	b := func(x ...byte) []byte { return x }
	open := func(name byte, flag uint16, slot byte) []byte {
		return b(fzOpen, name, byte(flag), byte(flag>>8), 1, slot)
	}
	// Flag bits of fuzzProg.flag.
	const (
		rdonly, wronly, rdwr, badacc = 0, 1, 2, 3
		creat, excl, trunc, appnd    = 4, 8, 16, 32
		direct, dsync, osync         = 64, 128, 256
	)
	// Lengths (fuzzProg.length) and offsets (fuzzProg.off).
	l8 := func(n byte) []byte { return b(1, n) }
	l16 := func(n uint16) []byte { return b(2, byte(n), byte(n>>8)) }
	lBlocks := func(n byte) []byte { return b(3, n) }
	lMis := func(sectors byte) []byte { return b(4, sectors, 2) } // 512*sectors+1
	lBig, l0 := b(5, 0), b(0)
	o16 := func(n uint16) []byte { return b(1, byte(n), byte(n>>8)) }
	oBlocks := func(n byte) []byte { return b(2, n) }
	oMis := func(sectors byte) []byte { return b(8, sectors, 2) } // 512*sectors+1
	o0, oNeg, oNearMax, oVol, oMaxInt := b(0), b(3, 0, 0), b(4, 10, 0), b(6, 0, 0), b(9, 0)
	oHuge := cat(b(5), binary.LittleEndian.AppendUint64(nil, 1<<62+12345))
	read := func(slot byte, l, o []byte, mis byte) []byte { return cat(b(fzRead, slot), l, o, b(mis)) }
	write := func(slot byte, l, o []byte, mis byte) []byte { return cat(b(fzWrite, slot), l, o, b(mis)) }
	trunc8 := func(slot byte, o []byte) []byte { return cat(b(fzTruncate, slot), o) }
	falloc := func(slot, mode byte, off, n []byte) []byte { return cat(b(fzFallocate, slot, mode), off, n, b(1)) }
	// Submit ops: code, file slot (4: nil), flags selector, offset, length.
	sop := func(code, slot, flags byte, o, l []byte) []byte { return cat(b(code, slot, flags), o, l, b(1, 0)) }
	submit := func(ring byte, ops ...[]byte) []byte { return cat(b(fzSubmit, ring, byte(len(ops))), cat(ops...)) }
	wait := func(ring, minSel, outLen byte) []byte { return b(fzWait, ring, minSel, outLen) }
	// NewRing: entries selector (and its bytes), slot, then 1 (a Wait
	// ring) or 0 (a function ring, NewRingFunc).
	newRing := func(sel ...byte) []byte { return cat(b(fzNewRing), sel, b(1)) }
	newRingFunc := func(sel ...byte) []byte { return cat(b(fzNewRing), sel, b(0)) }

	return [][]byte{
		// A buffered file: write, read back, truncate, fallocate, punch,
		// zero, stat, sync, close twice, use after close.
		cat(b(0), open(0, rdwr|creat|excl, 0),
			write(0, l16(12288), oMis(5), 0), read(0, l16(20000), o0, 1),
			trunc8(0, o16(5000)), read(0, lBlocks(3), o0, 0),
			falloc(0, 0, o16(4000), o16(9000)), falloc(0, 1, oBlocks(40), o16(100)),
			falloc(0, 2, o16(100), o16(3000)), falloc(0, 3, o16(7000), o16(100)),
			falloc(0, 4, o16(10), o16(10)), read(0, l16(40000), o0, 3),
			b(fzStat, 0, fzSync, 0, fzClose, 0, fzClose, 0),
			read(0, l8(10), o0, 0), write(0, l8(10), o0, 0), b(fzStat, 0, fzSync, 0)),
		// Bad names, flags and perms; namespace calls.
		cat(b(1), open(6, rdwr|creat, 0), open(7, rdwr|creat, 1), open(8, rdwr|creat, 2),
			open(14, rdwr|creat, 3), open(15, rdwr|creat, 0), open(16, rdwr|creat, 0),
			open(17, rdwr|creat, 0), open(0, badacc|creat, 0), open(1, rdwr, 0),
			open(1, rdonly, 0), open(1, rdwr|trunc, 0),
			b(fzMkdir, 2, 1, fzMkdir, 2, 1, fzMkdir, 6, 1, fzMkdir, 9, 1, fzMkdir, 15, 1),
			b(fzMkdir, 18, 0, 0xff, 0xff, 0xff, 0xff), open(3, rdwr|creat|excl, 0),
			open(3, rdwr|creat|excl, 1), open(2, rdwr, 2), open(0, wronly|creat, 3),
			open(5, rdwr|creat, 0), open(0, rdwr|creat, 0),
			b(fzOpen, 19, rdwr|creat, 0, 0, 0x00, 0x00, 0x08, 0x80, 1),
			b(fzRemove, 2, fzRename, 3, 4, fzRename, 2, 3, fzRename, 0, 8, fzRename, 2, 3, fzRename, 0, 1),
			b(fzVolStat, 7, fzVolStat, 9, fzVolStat, 0, fzVolStat, 8, fzReadDir, 7, fzReadDir, 2),
			b(fzReadDir, 0, fzReadDir, 10, fzRemove, 7, fzRemove, 16, fzRemove, 2, fzVolSync, fzFsck)),
		// Bad offsets and lengths on a buffered and a direct file, misaligned
		// buffers, and Fallocate with bad modes.
		cat(b(2), open(0, rdwr|creat|excl, 0), open(1, rdwr|creat|direct|dsync, 1),
			write(0, l8(5), oNeg, 0), write(0, l8(5), oNearMax, 0), write(0, l8(5), oHuge, 0),
			write(0, l8(5), oMaxInt, 0), write(0, lBig, o0, 0), write(0, lMis(3), oVol, 7),
			write(1, lMis(3), oMis(1), 1), write(1, lBlocks(2), oBlocks(1), 0),
			read(1, lMis(9), oMis(0), 3), read(1, l16(4096), oNearMax, 0), read(1, lBig, oNeg, 0),
			read(0, l8(9), oMaxInt, 5), read(0, l8(9), oHuge, 0), read(0, lBig, o0, 0),
			trunc8(0, oNeg), trunc8(0, oNearMax), trunc8(0, oHuge), trunc8(1, oMis(3)),
			falloc(0, 5, o0, o16(10)), falloc(0, 6, o0, o16(10)), falloc(0, 7, o0, o16(10)),
			cat(b(fzFallocate, 1, 250, 0xff, 0xff, 0xff, 0xff), o0, o16(10), b(1)),
			falloc(0, 0, oNeg, o16(1)), falloc(0, 0, o0, oNeg), falloc(0, 0, o0, o0),
			falloc(0, 0, oNearMax, oNearMax), falloc(1, 2, o0, oMaxInt), falloc(1, 0, o0, oVol),
			read(4, l8(1), o0, 0), write(4, l8(1), o0, 0), trunc8(4, o0), b(fzSync, 4, fzClose, 4, fzStat, 4),
			write(0, l0, o0, 0), read(0, l0, o0, 0), read(1, l0, oNeg, 0)),
		// Rings: bad entries, submits with bad codes, flags, files and
		// offsets, and waits with bad arguments.
		cat(b(0x0c), open(0, rdwr|creat|excl, 0), open(1, rdwr|creat|direct, 1),
			open(2, rdonly|creat, 2), open(1, wronly, 3),
			newRing(0, 0), newRing(1, 1, 0, 0), newRing(2, 0, 0), newRing(3, 0, 0), newRing(4, 0),
			newRing(5, 3, 0), newRing(6, 1, 1),
			submit(0, sop(1, 0, 0, o0, l16(7000)), sop(1, 1, 2, o0, lBlocks(2)),
				sop(0, 1, 2, o0, lBlocks(1)), sop(2, 4, 3, o0, l0)),
			submit(0, sop(0, 0, 4, oMis(1), lMis(2)), cat(b(3, 200, 0, 0), o0, l8(1), b(1, 0))),
			submit(0, sop(0, 2, 0, o0, l8(3)), sop(1, 2, 0, o0, l8(3))),
			submit(0, sop(0, 3, 0, o0, l8(3))),
			submit(0, cat(b(1, 1, 5, 0xff, 0xff, 0xff, 0xff), o0, l8(3), b(1, 0))),
			submit(0, sop(1, 1, 0, oNeg, l8(3)), sop(0, 1, 0, oNearMax, l16(5000))),
			submit(0, sop(1, 1, 1, oNearMax, l8(3))),
			wait(0, 4, 8), wait(0, 1, 1), wait(0, 2, 2), wait(0, 3, 0), wait(0, 0, 8), wait(1, 0, 8),
			submit(1, sop(1, 1, 2, oMis(3), lMis(2)), sop(0, 1, 3, oMis(1), lMis(4)),
				sop(2, 1, 3, o0, l0), sop(0, 0, 0, oHuge, l8(9))),
			submit(1, sop(1, 1, 0, o0, lBlocks(1)), sop(1, 1, 0, o0, lBlocks(1)),
				sop(1, 1, 0, o0, lBlocks(1)), sop(1, 1, 0, o0, lBlocks(1))),
			b(fzRingClose, 1), submit(1, sop(0, 0, 0, o0, l8(1))), wait(1, 0, 8),
			b(fzClose, 0), submit(0, sop(0, 0, 0, o0, l8(1))), wait(0, 4, 8)),
		// Use after Volume.Close, with a ring op in flight.
		cat(b(0), open(0, rdwr|creat|excl, 0), newRing(5, 3, 0),
			submit(0, sop(1, 0, 0, o0, lBlocks(4))), b(fzVolClose, 0),
			write(0, l8(1), o0, 0), read(0, l8(1), o0, 0), b(fzSync, 0, fzStat, 0),
			open(1, rdwr|creat, 1), b(fzMkdir, 2, 1, fzVolSync, fzFsck, fzVolStat, 0, fzReadDir, 7),
			b(fzRemove, 0, fzRename, 0, 1), newRing(5, 1, 0),
			submit(0, sop(0, 0, 0, o0, l8(1))), wait(0, 0, 8), b(fzClose, 0, fzClose, 0, fzRingClose, 0)),
		// A function ring: direct and buffered writes and reads, fsync,
		// rejected ops, Wait (EINVAL) and Close with ops in flight.
		cat(b(0), open(0, rdwr|creat|excl, 0), open(1, rdwr|creat|direct, 1),
			newRingFunc(5, 3, 0), newRingFunc(0, 1),
			submit(0, sop(1, 1, 0, o0, lBlocks(2)), sop(1, 0, 0, o16(100), l16(5000)),
				sop(2, 1, 0, o0, l0), sop(0, 1, 2, o0, lBlocks(1))),
			submit(0, sop(0, 0, 0, o0, l8(200)), sop(0, 1, 1, oNeg, l8(3))),
			wait(0, 4, 8), submit(0, sop(1, 1, 3, oMis(1), lMis(2)), sop(0, 1, 0, oBlocks(1), lBlocks(1))),
			b(fzRingClose, 0), submit(0, sop(0, 0, 0, o0, l8(1))), wait(0, 0, 8)),
		// O_APPEND, O_TRUNC, O_SYNC, and writes larger than the volume
		// (ENOSPC) on buffered and direct files.
		cat(b(0x13), open(0, rdwr|creat|trunc|appnd, 0), write(0, l8(100), oHuge, 1),
			write(0, l8(100), o0, 0), read(0, l8(255), o0, 0), b(fzStat, 0),
			open(0, rdwr|creat|osync|direct, 1), write(1, lBig, o0, 0), write(0, lBig, o0, 0),
			b(fzSync, 1, fzClose, 1, fzFsck), read(0, lBig, o0, 0), trunc8(0, o0),
			write(0, lBlocks(16), oBlocks(1), 0), b(fzVolSync, fzStat, 0)),
	}
}
