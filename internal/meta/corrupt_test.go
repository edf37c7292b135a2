package meta

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/format"
)

// corruptBase builds a volume image with a checkpoint (after Close) plus
// committed journal chunks on top, and returns it with its state dump.
func corruptBase(t testing.TB) (img []byte, want string, sb format.Superblock) {
	dev := sim.New(sim.Options{Size: 1 << 20, SectorSize: 512, WriteThrough: true})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{BlockSize: 1024}))
	f, err := Mount(dev, MountOptions{})
	must(t, err)
	populate := func(prefix string, n int) {
		_, err := f.Mkdir(prefix, 0o755)
		must(t, err)
		for i := range n {
			ino, _, err := f.Create(fmt.Sprintf("%s/f%d", prefix, i), 0o644, false)
			must(t, err)
			must(t, f.AllocUnwritten(ino, int64(i), 3))
			must(t, f.ConvertWritten(ino, int64(i), 1, int64(i+1)*1024))
		}
	}
	populate("ck", 20)
	must(t, f.Close())
	f, err = Mount(dev, MountOptions{})
	must(t, err)
	populate("j1", 5)
	must(t, f.Commit())
	populate("j2", 5)
	must(t, f.Commit())
	want = dump(f, func(Ino, int64, int64) string { return "" })
	sb = f.sb
	return dev.Image(), want, sb
}

// mountImage mounts a copy of img and returns the dump, or the error. It
// fails the test on a panic (by not recovering) or on an inconsistent result.
func mountImage(t *testing.T, img []byte) (string, error) {
	dev := &imageDev{img: img}
	f, err := Mount(dev, MountOptions{})
	if err != nil {
		if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.EIO) {
			t.Fatalf("mount error does not match EINVAL/EIO: %v", err)
		}
		return "", err
	}
	if c := f.Check(); len(c) > 0 {
		t.Fatalf("mounted a corrupt image inconsistently: %q", c)
	}
	return dump(f, func(Ino, int64, int64) string { return "" }), nil
}

// TestCorruptSuperblock flips every byte of each superblock copy in turn:
// the volume must mount from the other copy with the full state.
//
// Checked by hand: removing the crc32c check in format.DecodeSuperblock makes
// it fail ("copy 0 byte 40 flipped: … the volume needs 1140736 (truncated
// image?)"), and so does never trying copy 1 in readSuperblocks ("copy 0 byte
// 0 flipped: … not an aiodio volume").
func TestCorruptSuperblock(t *testing.T) {
	img, want, sb := corruptBase(t)
	bs := int(sb.BlockSize)
	for copyNo := range 2 {
		for i := 0; i < format.SuperblockSize; i++ {
			img[copyNo*bs+i] ^= 0x5a
			got, err := mountImage(t, img)
			img[copyNo*bs+i] ^= 0x5a
			if err != nil || got != want {
				t.Fatalf("copy %d byte %d flipped: %v\n%s", copyNo, i, err, got)
			}
		}
	}
	// Both copies damaged: a clean error naming the problem.
	b := append([]byte(nil), img...)
	b[100] ^= 1
	b[bs+100] ^= 1
	if _, err := mountImage(t, b); !errors.Is(err, format.ErrChecksum) {
		t.Fatalf("both copies damaged: %v", err)
	}
}

// TestCorruptCheckpoint flips bytes of the active checkpoint: mount must fail
// cleanly (EINVAL) or, when the byte is padding, succeed with the full state.
//
// Checked by hand: removing the header crc32c check in
// format.DecodeCheckpointHeader makes it fail ("checkpoint byte 16 flipped:
// mounted anyway"), and so does removing the payload crc32c check in
// format.DecodeCheckpoint ("checkpoint byte 93 flipped: mounted anyway").
func TestCorruptCheckpoint(t *testing.T) {
	img, want, sb := corruptBase(t)
	bs := int64(sb.BlockSize)
	start := int64(sb.CheckpointStart[sb.ActiveSlot]) * bs
	n := int64(format.CheckpointHeaderSize) + int64(sb.CheckpointLen)
	for i := int64(0); i < n+16; i++ {
		img[start+i] ^= 0x81
		got, err := mountImage(t, img)
		img[start+i] ^= 0x81
		switch {
		case i < n && err == nil:
			t.Fatalf("checkpoint byte %d flipped: mounted anyway", i)
		case i >= n && (err != nil || got != want):
			t.Fatalf("padding byte %d flipped: %v", i, err)
		}
	}
}

// TestCorruptJournal flips bytes in the committed journal chunks: replay
// must stop cleanly at the damaged chunk, leaving a consistent prefix (the
// checkpoint plus the chunks before it), never a panic.
//
// Checked by hand: removing the payload crc32c check in format.ChunkPayload
// makes it fail ("journal byte 64 flipped: … unknown record type 37").
func TestCorruptJournal(t *testing.T) {
	img, want, sb := corruptBase(t)
	bs := int64(sb.BlockSize)
	start := int64(sb.JournalStart) * bs
	h, err := format.DecodeChunkHeader(img[start:], int(bs))
	must(t, err)
	first := int64(h.Blocks) * bs
	h2, err := format.DecodeChunkHeader(img[start+first:], int(bs))
	must(t, err)
	total := first + int64(h2.Blocks)*bs
	prefixes := map[string]bool{}
	for i := int64(0); i < total; i++ {
		img[start+i] ^= 0x24
		got, err := mountImage(t, img)
		img[start+i] ^= 0x24
		if err != nil {
			t.Fatalf("journal byte %d flipped: %v", i, err)
		}
		if got == want {
			if i < format.ChunkHeaderSize+int64(h.PayloadLen) ||
				(i >= first && i < first+format.ChunkHeaderSize+int64(h2.PayloadLen)) {
				t.Fatalf("journal byte %d flipped but both chunks replayed", i)
			}
		}
		prefixes[got] = true
	}
	if len(prefixes) != 3 { // everything, checkpoint + chunk 1, checkpoint only
		t.Fatalf("%d distinct recovered states, want 3", len(prefixes))
	}
}

// imageDev is a synchronous device over a byte slice (no copy), so the
// corruption tests can mount thousands of one-byte variants quickly.
type imageDev struct{ img []byte }

func (d *imageDev) Info() device.Info {
	return device.Info{Size: int64(len(d.img)), LogicalBlockSize: 512, PhysicalBlockSize: 512,
		MemAlign: 512, MaxIO: 1 << 20, Engine: "image"}
}

func (d *imageDev) Submit(reqs ...*device.Request) (int, error) {
	for i, r := range reqs {
		if err := device.Check(d.Info(), r); err != nil {
			return i, err
		}
		switch r.Kind {
		case device.Read:
			r.N = copy(r.Buf, d.img[r.Off:])
		case device.Write:
			r.N = copy(d.img[r.Off:], r.Buf)
		}
		r.Done(r)
	}
	return len(reqs), nil
}

func (d *imageDev) Close() error { return nil }
