package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"

	"golang.org/x/sys/unix"
)

// prepareImage makes path a regular file of size bytes whose every block is
// allocated and holds non-zero data, so that reads hit real blocks (a
// sparse or fallocated file reads holes and measures nothing), then syncs it
// and drops it from the page cache.
func prepareImage(ctx context.Context, a *app, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("creating image: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("sizing image %s: %w", path, err)
	}
	const chunk = 4 << 20
	buf := make([]byte, chunk)
	rng := rand.New(rand.NewPCG(uint64(size), 0x696d616765))
	for i := 0; i+8 <= len(buf); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			buf[i+k] = byte(v >> (8 * k))
		}
	}
	p := newCountProgress(a, "prepare "+formatSize(size), (size+chunk-1)/chunk)
	for off := int64(0); off < size; off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(chunk), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("filling image %s: %w", path, err)
		}
		p.update(off/chunk + 1)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing image %s: %w", path, err)
	}
	p.finish((size + chunk - 1) / chunk)
	_ = unix.Fadvise(int(f.Fd()), 0, size, unix.FADV_DONTNEED)
	return nil
}
