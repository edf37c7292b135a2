package meta

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/format"
)

// TestMkfsBadInput checks that bad block sizes and too-small devices are
// refused with EINVAL/ENOSPC by mkfs's own checks: each bad size breaks one
// rule only (on a device whose sector size lets the others pass), the error
// must be mkfs's block-size error (not a later device error), and the same
// device takes a good block size.
//
// Checked by hand: removing the power-of-two test in Mkfs fails the 1536
// case, removing the logical-block-size test fails the 2048-on-4096 case
// (the device's own EINVAL does not name the block size), and removing the
// ErrTooSmall check in layout fails the small-device case.
func TestMkfsBadInput(t *testing.T) {
	cases := []struct {
		name       string
		sector, bs int
	}{
		{"not a power of two", 512, 1536},
		{"below the minimum", 512, 256},
		{"above the maximum", 512, 131072},
		{"smaller than the device's sector", 4096, 2048},
	}
	for _, c := range cases {
		dev := sim.New(sim.Options{Size: 8 << 20, SectorSize: c.sector})
		err := Mkfs(dev, MkfsOptions{BlockSize: c.bs})
		wantErr(t, err, syscall.EINVAL, c.name)
		if !strings.Contains(err.Error(), fmt.Sprintf("mkfs: block size %d ", c.bs)) {
			t.Fatalf("%s: %v is not mkfs's block-size error", c.name, err)
		}
		if err := Mkfs(dev, MkfsOptions{BlockSize: c.sector}); err != nil {
			t.Fatalf("%s: the device refuses a good block size too: %v", c.name, err)
		}
		dev.Close()
	}
	small := sim.New(sim.Options{Size: 64 << 10, SectorSize: 512})
	defer small.Close()
	err := Mkfs(small, MkfsOptions{})
	if !errors.Is(err, ErrTooSmall) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("small device: %v", err)
	}
}

// TestMountForeign checks foreign, newer, truncated and tiny images.
//
// Checked by hand: removing the device-size check in readSuperblocks makes it
// fail ("truncated: <nil>"), and so does removing the version check in
// format.DecodeSuperblock ("newer: <nil>").
func TestMountForeign(t *testing.T) {
	zeros := sim.New(sim.Options{Size: 1 << 20, SectorSize: 512})
	defer zeros.Close()
	_, err := Mount(zeros, MountOptions{})
	if !errors.Is(err, ErrNotAiodio) || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "zeros") {
		t.Fatalf("zeros: %v", err)
	}
	if _, err := Fsck(zeros); !errors.Is(err, ErrNotAiodio) {
		t.Fatalf("fsck zeros: %v", err)
	}
	ext := make([]byte, 1<<20)
	ext[1080], ext[1081] = 0x53, 0xef
	extDev := sim.New(sim.Options{Image: ext, SectorSize: 512})
	defer extDev.Close()
	if _, err := Mount(extDev, MountOptions{}); err == nil || !strings.Contains(err.Error(), "ext2/3/4") {
		t.Fatalf("ext4: %v", err)
	}

	dev := sim.New(sim.Options{Size: 4 << 20, SectorSize: 512, WriteThrough: true})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{}))
	img := dev.Image()

	// Newer version in both copies (valid crc).
	newer := append([]byte(nil), img...)
	sb, err := format.DecodeSuperblock(newer)
	must(t, err)
	sb.Version = format.Version + 1
	sb.Encode(newer[0:])
	sb.Encode(newer[4096:])
	nd := sim.New(sim.Options{Image: newer, SectorSize: 512})
	defer nd.Close()
	if _, err := Mount(nd, MountOptions{}); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("newer: %v", err)
	}

	// Truncated image: the device is smaller than the superblock says.
	td := sim.New(sim.Options{Image: img[:2<<20], SectorSize: 512})
	defer td.Close()
	if _, err := Mount(td, MountOptions{}); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	// A device smaller than one block.
	tiny := sim.New(sim.Options{Image: img[:512], SectorSize: 512})
	defer tiny.Close()
	if _, err := Mount(tiny, MountOptions{}); err == nil {
		t.Fatal("tiny device mounted")
	}
}

// TestReadOnlyAndClosed checks update refusal on read-only and closed volumes.
func TestReadOnlyAndClosed(t *testing.T) {
	dev := sim.New(sim.Options{Size: 4 << 20, SectorSize: 512, WriteThrough: true})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{}))
	ro, err := Mount(dev, MountOptions{ReadOnly: true})
	must(t, err)
	_, _, err = ro.Create("a", 0o644, false)
	wantErr(t, err, syscall.EROFS, "create on read-only")
	must(t, ro.Commit()) // nothing to commit: succeeds like fsync on a read-only mount
	must(t, ro.Close())
	f, err := Mount(dev, MountOptions{})
	must(t, err)
	must(t, f.Close())
	_, _, err = f.Create("a", 0o644, false)
	wantErr(t, err, syscall.EBADF, "create after close")
	_, err = f.Lookup(".")
	wantErr(t, err, syscall.EBADF, "lookup after close")
	must(t, f.Close())
}

// TestMetadataBudgetENOSPC fills the inode/name budget with long names:
// creation fails cleanly with ENOSPC, removal still works, and the
// checkpoint of the full volume fits its slot (Close, remount, fsck).
func TestMetadataBudgetENOSPC(t *testing.T) {
	dev := sim.New(sim.Options{Size: 2 << 20, SectorSize: 512, WriteThrough: true})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{}))
	f, err := Mount(dev, MountOptions{})
	must(t, err)
	long := strings.Repeat("n", 250)
	var made int
	for i := 0; ; i++ {
		_, _, err := f.Create(sprintf("%s%05d", long, i), 0o644, true)
		if err != nil {
			wantErr(t, err, syscall.ENOSPC, "create past the metadata budget")
			break
		}
		made++
		if made > 100000 {
			t.Fatal("budget never reached")
		}
	}
	_, err = f.Mkdir(long+"dir", 0o755)
	wantErr(t, err, syscall.ENOSPC, "mkdir past the metadata budget")
	must(t, f.Unlink(sprintf("%s%05d", long, 0)))
	_, _, err = f.Create("short", 0o644, true)
	must(t, err)
	must(t, f.Close())
	g, err := Mount(dev, MountOptions{})
	must(t, err)
	if s := g.Stats(); s.Files != int64(made) {
		t.Fatalf("files %d, want %d", s.Files, made)
	}
	if fi, err := Fsck(dev); err != nil || len(fi) > 0 {
		t.Fatal(fi, err)
	}
}
