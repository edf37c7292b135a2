package meta

import (
	"encoding/binary"
	"sync"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzImg  []byte
)

// fuzzBase is a small volume image with a checkpoint and journal chunks.
func fuzzBase(t *testing.T) []byte {
	fuzzOnce.Do(func() { fuzzImg, _, _ = corruptBase(t) })
	return fuzzImg
}

// FuzzMount mutates the metadata areas of a valid image (the fuzzer picks
// offsets and bytes) and mounts it: Mount must return a clean error or a
// volume that Check finds consistent or reports on, and must never panic.
func FuzzMount(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0xff})
	f.Add([]byte{0x10, 0, 0, 0, 1, 0x20, 0x10, 0, 0, 2})
	f.Fuzz(func(t *testing.T, muts []byte) {
		base := fuzzBase(t)
		if base == nil {
			t.Skip("no base image")
		}
		img := append([]byte(nil), base...)
		// Mutations: 4-byte little-endian offset (into the metadata areas) + 1 byte xor.
		meta := 1 << 17 // the first 128 KiB hold superblocks, journal, checkpoint start
		for len(muts) >= 5 {
			off := int(binary.LittleEndian.Uint32(muts)) % meta
			img[off] ^= muts[4] | 1
			muts = muts[5:]
		}
		dev := &imageDev{img: img}
		g, err := Mount(dev, MountOptions{})
		if err != nil {
			return
		}
		_ = g.Check()
		_, _ = Fsck(dev)
		_, _, _ = g.Create("x", 0o644, false)
		_ = g.Commit()
	})
}
