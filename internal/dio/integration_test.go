package dio

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// The real layers satisfy the engine's interfaces.
var (
	_ Extents = (*meta.FS)(nil)
	_ Cache   = (*pagecache.File)(nil)
)

// backing is the pagecache.Backing a root package would write: the
// logical size is the Inode's; WritePages allocates unwritten, writes,
// converts (raising meta's size only up to the logical size).
type backing struct {
	fs  *meta.FS
	dev device.Device
	in  *Inode
}

func (b *backing) Size() int64 { return b.in.Size() }

func (b *backing) ReadPages(off int64, p []byte) error {
	bs := int64(b.fs.BlockSize())
	maps, err := b.fs.Map(nil, b.in.Ino, off/bs, (int64(len(p))+bs-1)/bs)
	if err != nil {
		return err
	}
	for _, m := range maps {
		lo, hi := m.FileBlock*bs-off, (m.FileBlock+m.Count)*bs-off
		seg := p[lo:min(hi, int64(len(p)))]
		if m.State != meta.Written {
			clear(seg)
			continue
		}
		if err := syncDev(b.dev, device.Read, m.DevBlock*bs, seg); err != nil {
			return err
		}
	}
	return nil
}

func (b *backing) WritePages(off int64, p []byte) error {
	bs := int64(b.fs.BlockSize())
	fb, n := off/bs, (int64(len(p))+bs-1)/bs
	if err := b.fs.AllocUnwritten(b.in.Ino, fb, n); err != nil {
		return err
	}
	maps, err := b.fs.Map(nil, b.in.Ino, fb, n)
	if err != nil {
		return err
	}
	for _, m := range maps {
		lo, hi := m.FileBlock*bs-off, (m.FileBlock+m.Count)*bs-off
		if err := syncDev(b.dev, device.Write, m.DevBlock*bs, p[lo:min(hi, int64(len(p)))]); err != nil {
			return err
		}
	}
	return b.fs.ConvertWritten(b.in.Ino, fb, n, min(off+int64(len(p)), b.in.Size()))
}

// TestIntegrationMetaPagecache runs direct writes and reads, buffered
// writes through the real page cache and direct reads after them, over
// the real metadata engine on a poisoned sim device, for both hole
// policies, against a byte model; then checks meta's size and that the
// poison never showed.
func TestIntegrationMetaPagecache(t *testing.T) {
	for _, policy := range []HolePolicy{Unwritten, BufferedFallback} {
		dev := sim.New(sim.Options{Size: 32 << 20, Seed: 5})
		dev.Poison(poison)
		if err := meta.Mkfs(dev, meta.MkfsOptions{}); err != nil {
			t.Fatal(err)
		}
		fs, err := meta.Mount(dev, meta.MountOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ino, _, err := fs.Create("f", 0o644, true)
		if err != nil {
			t.Fatal(err)
		}
		pc := pagecache.New(pagecache.Options{Limit: 4 << 20})
		e, err := New(dev, fs, Options{BlockSize: fs.BlockSize(), HolePolicy: policy})
		if err != nil {
			t.Fatal(err)
		}
		in := NewInode(ino, 0, nil)
		cf := pc.Open(&backing{fs: fs, dev: dev, in: in})
		in.cache = cf
		rng := rand.New(rand.NewPCG(uint64(policy), 9))
		const fileMax = 256 << 10
		var model []byte
		for i := 0; i < 200; i++ {
			off := rng.Int64N(fileMax - 1)
			n := 1 + rng.IntN(min(30000, fileMax-int(off)))
			data := pattern(n, byte(i))
			if rng.IntN(3) == 0 { // buffered write (root: inode lock exclusive)
				if err := in.Lock.Lock(ctxT(t)); err != nil {
					t.Fatal(err)
				}
				if _, err := cf.WriteAt(data, off); err != nil {
					t.Fatal(err)
				}
				in.GrowSize(off + int64(n))
				in.Lock.Unlock()
			} else if w, err := e.WriteAt(in, data, off, 0); w != n || err != nil {
				t.Fatalf("policy %v: direct write %d@%d = %d, %v", policy, n, off, w, err)
			}
			if end := int(off) + n; end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[off:], data)
			ro := rng.Int64N(int64(len(model)))
			got := make([]byte, 1+rng.IntN(30000))
			k, err := e.ReadAt(in, got, ro, 0)
			want := model[ro:min(int(ro)+len(got), len(model))]
			if k != len(want) || !bytes.Equal(got[:k], want) || (k < len(got) && err != io.EOF) {
				t.Fatalf("policy %v op %d: read %d@%d = %d (want %d), %v; equal=%v poison=%v", policy, i,
					len(got), ro, k, len(want), err, bytes.Equal(got[:k], want), bytes.Contains(got, poison))
			}
		}
		if err := cf.Sync(); err != nil {
			t.Fatal(err)
		}
		attr, err := fs.Attr(ino)
		if err != nil {
			t.Fatal(err)
		}
		if attr.Size != int64(len(model)) || in.Size() != int64(len(model)) {
			t.Fatalf("sizes: meta %d, inode %d, model %d", attr.Size, in.Size(), len(model))
		}
		if err := cf.Close(); err != nil {
			t.Fatal(err)
		}
		pc.Close()
		e.Close()
		if err := fs.Close(); err != nil {
			t.Fatal(err)
		}
		if findings, err := meta.Fsck(dev); err != nil || len(findings) > 0 {
			t.Fatalf("fsck: %v %q", err, findings)
		}
		dev.Close()
	}
}
