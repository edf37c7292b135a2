package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/internal/format"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/testenv"
	"golang.org/x/sys/unix"
)

// newVolume makes a volume image with a file "dir/f" holding a written
// block, a hole, an unwritten (preallocated) block and a written tail.
func newVolume(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "v.img")
	if code, _, _ := cli(t, "mkfs", img, "--size", "4MiB"); code != exitOK {
		t.Fatalf("mkfs: exit %d", code)
	}
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Mkdir("dir", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := v.OpenFile("dir/f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	buf := aiodio.AlignedBuffer(4096)
	for i := range buf {
		buf[i] = 'x'
	}
	for _, off := range []int64{0, 4 * 4096} { // blocks 0 and 4 written
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Fallocate(unix.FALLOC_FL_KEEP_SIZE, 2*4096, 4096); err != nil { // block 2 unwritten
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestMkfsSparseFsckStat(t *testing.T) {
	img := filepath.Join(t.TempDir(), "v.img")
	code, stdout, _ := cli(t, "mkfs", img, "--size", "64MiB", "--block-size", "8192")
	if code != exitOK || !strings.Contains(stdout, "block size 8192") {
		t.Fatalf("mkfs: exit %d, %q", code, stdout)
	}
	st, err := os.Stat(img)
	if err != nil || st.Size() != 64<<20 {
		t.Fatalf("image: %v %v", st, err)
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used >= 32<<20 {
		t.Errorf("image not sparse: %d bytes allocated of 64MiB", used)
	}
	if code, stdout, _ := cli(t, "fsck", img); code != exitOK || !strings.Contains(stdout, "clean") {
		t.Errorf("fsck of a new volume: exit %d, %q", code, stdout)
	}
	code, stdout, _ = cli(t, "stat", img)
	if code != exitOK {
		t.Fatalf("stat: exit %d", code)
	}
	for _, want := range []string{"block size      8192", "total blocks    8192", "free blocks", "pending blocks", "1 directories", "journal"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stat lacks %q", want)
		}
	}
}

func TestStatFile(t *testing.T) {
	img := newVolume(t)
	code, stdout, _ := cli(t, "stat", img)
	if code != exitOK || !strings.Contains(stdout, "(1 files, 2 directories)") || !strings.Contains(stdout, "used blocks     3 ") {
		t.Fatalf("stat: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = cli(t, "stat", img, "dir/f")
	if code != exitOK {
		t.Fatalf("stat dir/f: exit %d", code)
	}
	for _, want := range []string{"size    20480", "-rw-r-----", "blocks  3 of 4096"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stat dir/f lacks %q", want)
		}
	}
	// The map in file order: 0 written, 1 hole, 2 unwritten, 3 hole, 4 written.
	var states []string
	for _, l := range strings.Split(stdout, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && strings.Contains(f[0], "..") {
			states = append(states, f[0]+" "+f[len(f)-1])
		}
	}
	want := "0..0 written,1..1 hole,2..2 unwritten,3..3 hole,4..4 written"
	if got := strings.Join(states, ","); got != want {
		t.Errorf("extent map %q, want %q", got, want)
	}
	if code, stdout, _ := cli(t, "stat", img, "dir"); code != exitOK || !strings.Contains(stdout, "directory dir") {
		t.Errorf("stat dir: exit %d %q", code, stdout)
	}
	if code, _, stderr := cli(t, "stat", img, "nope"); code != exitFailure || !strings.Contains(stderr, "no such file") {
		t.Errorf("stat of a missing file: exit %d %q", code, stderr)
	}
	if code, _, _ := cli(t, "fsck", img); code != exitOK {
		t.Errorf("fsck after writes: exit %d", code)
	}
}

func TestExtentMapHoles(t *testing.T) {
	rows := extentMap([]meta.Mapping{{FileBlock: 3, Count: 2, DevBlock: 100, State: meta.Written}}, 10*4096+1, 4096)
	if len(rows) != 3 || rows[0].state != "hole" || rows[0].count != 3 || rows[2].fileBlock != 5 || rows[2].count != 6 {
		t.Errorf("rows %+v", rows)
	}
	// Preallocation past EOF: no trailing hole.
	rows = extentMap([]meta.Mapping{{FileBlock: 0, Count: 8, DevBlock: 9, State: meta.Unwritten}}, 100, 4096)
	if len(rows) != 1 || rows[0].state != "unwritten" {
		t.Errorf("rows %+v", rows)
	}
}

func TestVolumeCmdUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"mkfs"},
		{"mkfs", filepath.Join(dir, "a"), "extra"},
		{"mkfs", filepath.Join(dir, "missing")}, // no --size
		{"mkfs", filepath.Join(dir, "b"), "--size", "1G", "--block-size", "3000"},
		{"mkfs", dir, "--size", "1G"},
		{"fsck"},
		{"fsck", dir},
		{"stat"},
		{"stat", "a", "b", "c"},
	} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("aiodio %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestFsckForeignAndMissing(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"fsck", "stat"} {
		code, _, stderr := cli(t, cmd, zeros)
		if code != exitFailure || !strings.Contains(stderr, "not an aiodio volume") {
			t.Errorf("%s of zeros: exit %d %q, want 1 and 'not an aiodio volume'", cmd, code, stderr)
		}
		code, _, stderr = cli(t, cmd, filepath.Join(dir, "missing.img"))
		if code != exitFailure || !strings.Contains(stderr, "no such file") {
			t.Errorf("%s of a missing image: exit %d %q", cmd, code, stderr)
		}
	}
}

func TestFsckBusy(t *testing.T) {
	img := newVolume(t)
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, cmd := range []string{"fsck", "stat"} {
		code, _, stderr := cli(t, cmd, img)
		if code != exitFailure || !strings.Contains(stderr, "busy") && !strings.Contains(stderr, "in use") && !strings.Contains(stderr, "open") {
			t.Errorf("%s of an open volume: exit %d %q", cmd, code, stderr)
		}
	}
}

// TestFsckCorrupted flips bytes all over the metadata area: fsck and stat
// give a clean result, findings or a clear error (exit 0 or 1), never a panic.
func TestFsckCorrupted(t *testing.T) {
	t.Parallel()
	img := newVolume(t)
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := format.DecodeSuperblock(orig[:format.SuperblockSize])
	if err != nil {
		t.Fatal(err)
	}
	bs := int64(sb.BlockSize)
	cp := int64(sb.CheckpointStart[sb.ActiveSlot]) * bs
	cpEnd := cp + int64(format.CheckpointHeaderSize) + int64(sb.CheckpointLen)
	// Positions: both superblocks, the active checkpoint (header and
	// payload), the other slot, the journal.
	var offs, cpOffs []int64
	for o := int64(0); o < format.SuperblockSize; o += 61 {
		offs = append(offs, o, bs+o)
	}
	for o := cp; o < cpEnd; o += max(1, (cpEnd-cp)/16) {
		cpOffs = append(cpOffs, o)
	}
	offs = append(offs, cpOffs...)
	offs = append(offs, int64(sb.CheckpointStart[1-sb.ActiveSlot])*bs, int64(sb.JournalStart)*bs)
	bad, cpBad := 0, 0
	for _, off := range offs {
		img2 := img + ".c"
		b := append([]byte(nil), orig...)
		for k := int64(0); k < 4 && off+k < int64(len(b)); k++ {
			b[off+k] ^= 0xa5
		}
		if err := os.WriteFile(img2, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"fsck", "stat"} {
			code, stdout, stderr := cli(t, cmd, img2)
			if code != exitOK && code != exitFailure {
				t.Fatalf("%s with bytes flipped at %d: exit %d", cmd, off, code)
			}
			if strings.Contains(stderr, "internal error") || strings.Contains(stderr, "panic") {
				t.Fatalf("%s with bytes flipped at %d panicked: %s", cmd, off, stderr)
			}
			if code == exitFailure {
				bad++
				if off >= cp && off < cpEnd {
					cpBad++
				}
				if stdout == "" && !strings.Contains(stderr, "aiodio: ") {
					t.Errorf("%s at %d: exit 1 without a message", cmd, off)
				}
			}
		}
	}
	// Both superblocks destroyed: a clear error, not a crash.
	b := append([]byte(nil), orig...)
	for i := range 2 * bs {
		b[i] ^= 0xff
	}
	img3 := img + ".sb"
	if err := os.WriteFile(img3, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "fsck", img3)
	if code != exitFailure || !strings.Contains(stderr, "fsck "+img3+": ") {
		t.Errorf("fsck without superblocks: exit %d %q", code, stderr)
	}
	t.Logf("%d positions, %d runs refused or with findings, %d in the checkpoint", len(offs), bad, cpBad)
	if cpBad == 0 {
		t.Errorf("no flip in the active checkpoint was detected (checksums not checked?)")
	}
}

// TestFsckFindings lists each finding and exits 1 (findings are injected:
// a consistent engine cannot produce them from outside).
func TestFsckFindings(t *testing.T) {
	img := newVolume(t)
	old := fsckVolume
	t.Cleanup(func() { fsckVolume = old })
	fsckVolume = func(path string) ([]string, error) {
		fi, err := old(path)
		if err != nil || len(fi) > 0 {
			return fi, errors.Join(err, errors.New("unexpected findings"))
		}
		return []string{"block 77 owned twice (inodes 2 and 3)", "inode 3: link count 7, named by 1"}, nil
	}
	code, stdout, stderr := cli(t, "fsck", img)
	if code != exitFailure || !strings.Contains(stdout, "block 77 owned twice") || !strings.Contains(stdout, "link count 7") ||
		!strings.Contains(stderr, "2 finding(s)") {
		t.Errorf("fsck with findings: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestMkfsBlockDevice runs mkfs, stat, fsck and a short demo-like write on
// a loop device with 4096-byte sectors.
func TestMkfsBlockDevice(t *testing.T) {
	testenv.NeedRoot(t)
	losetup := testenv.NeedCommand(t, "losetup")
	img := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", "--sector-size", "4096", "--direct-io=on", img).CombinedOutput()
	testenv.Need(t, "loop", err == nil, "losetup: "+strings.TrimSpace(string(out)))
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	code, stdout, _ := cli(t, "mkfs", dev)
	if code != exitOK || !strings.Contains(stdout, "device") {
		t.Fatalf("mkfs %s: exit %d %q", dev, code, stdout)
	}
	v, err := aiodio.Open(dev, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := v.OpenFile("a", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(aiodio.AlignedBuffer(8192), 4096); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Close(), v.Close()); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = cli(t, "stat", dev, "a")
	if code != exitOK || !strings.Contains(stdout, "0..0") || !strings.Contains(stdout, "1..2") {
		t.Errorf("stat %s a: exit %d %q", dev, code, stdout)
	}
	if code, _, _ := cli(t, "fsck", dev); code != exitOK {
		t.Errorf("fsck %s: exit %d", dev, code)
	}
}

// TestFsckCorruptedJournal takes the image of a volume that was synced but
// not closed (its journal holds records after the checkpoint), then flips
// bytes across those journal blocks: fsck and stat recover (replay stops
// at the bad record) or fail with a clear error, never panic.
func TestFsckCorruptedJournal(t *testing.T) {
	t.Parallel()
	img := newVolume(t)
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		f, err := v.OpenFile(fmt.Sprintf("dir/j%d", i), os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(aiodio.AlignedBuffer(4096), int64(i)*4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := v.Sync(); err != nil { // one journal chunk per commit
			t.Fatal(err)
		}
	}
	crashed, err := os.ReadFile(img) // as after a power cut: journal not checkpointed
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	sb, err := format.DecodeSuperblock(crashed[:format.SuperblockSize])
	if err != nil {
		t.Fatal(err)
	}
	bs := int64(sb.BlockSize)
	img2 := img + ".crashed"
	if err := os.WriteFile(img2, crashed, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := cli(t, "stat", img2)
	if code != exitOK {
		t.Fatalf("stat of the crashed image: exit %d", code)
	}
	var used int64
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "journal" {
			used, _ = parseSize(f[1])
		}
	}
	if used == 0 {
		t.Fatalf("the crashed image has no journal records:\n%s", stdout)
	}
	if code, _, _ := cli(t, "fsck", img2); code != exitOK {
		t.Errorf("fsck of the crashed image: exit %d", code)
	}
	js := int64(sb.JournalStart) * bs
	for o := js; o < js+used*bs; o += max(61, used*bs/24) {
		b := append([]byte(nil), crashed...)
		for k := range int64(4) {
			b[o+k] ^= 0x5a
		}
		if err := os.WriteFile(img2, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"fsck", "stat"} {
			code, _, stderr := cli(t, cmd, img2)
			if code != exitOK && code != exitFailure {
				t.Fatalf("%s with journal bytes flipped at %d: exit %d", cmd, o, code)
			}
			if strings.Contains(stderr, "internal error") || strings.Contains(stderr, "panic") {
				t.Fatalf("%s with journal bytes flipped at %d panicked: %s", cmd, o, stderr)
			}
		}
	}
}
