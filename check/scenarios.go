package check

// Named races (aiodio check --scenario): small, repeatable reductions of
// what the random workload found on kernel filesystems through io_uring.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/aiodio/aiodio/internal/alignbuf"
)

// ExtendTruncateName is the file ExtendTruncateRace works on (removed at
// the end).
const ExtendTruncateName = "extend-truncate"

// ExtendTruncateRace runs one race of the seed-000 family iterations times
// on t and returns in how many the data of a completed write was lost:
//
//  1. a file of 151 blocks of 4 KiB (618496 bytes);
//  2. an async direct write of 4 KiB at 630784, three blocks past end of
//     file: an extending write with a gap before it;
//  3. at once, from another handle, a truncate that raises the size to
//     641488, past the write's end, while the write may be in flight;
//  4. the write completes (4096 bytes, no error); then a direct read of its
//     range must return its bytes.
//
// Whatever the order of 2 and 3, the write's bytes must be there: raising
// the size only adds zeros past the old end of file. A filesystem that
// samples the old size before it waits for direct I/O in flight zeroes from
// there, over the completed write: found on xfs (Linux 6.18, kernel
// directory through io_uring: `aiodio check DIR --engine uring --scenario
// extend-truncate`). aiodio's truncate waits for the inode's direct I/O to
// drain before it reads the size (I7).
//
// With a kernel directory the async write must really be asynchronous:
// set DirTarget.URing (with goroutines the pwrite holds the inode lock
// until the data is written, and no truncate can get in between).
func ExtendTruncateRace(ctx context.Context, t Target, iterations int) (lost int, err error) {
	const (
		size0 = 151 * 4096
		off   = size0 + 3*4096
		n     = 4096
		size1 = off + n + 6608
	)
	q, err := t.NewAsync(2)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	w := alignbuf.Alloc(n)
	for i := range w {
		w[i] = byte(0x80 | i*7)
	}
	got := alignbuf.Alloc(n)
	out := make([]Completion, 1)
	defer t.Remove(ExtendTruncateName)
	for it := 0; it < iterations; it++ {
		if err := ctx.Err(); err != nil {
			return lost, err
		}
		if err := t.Remove(ExtendTruncateName); err != nil && !errors.Is(err, syscall.ENOENT) {
			return lost, err
		}
		bad, err := extendTruncateOnce(ctx, t, q, w, got, out, size0, off, size1)
		if err != nil {
			return lost, fmt.Errorf("extend-truncate iteration %d: %w", it, err)
		}
		if bad {
			lost++
		}
	}
	return lost, nil
}

func extendTruncateOnce(ctx context.Context, t Target, q Async, w, got []byte, out []Completion, size0, off, size1 int64) (bool, error) {
	f, err := t.OpenFile(ExtendTruncateName, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	g, err := t.OpenFile(ExtendTruncateName, os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	defer g.Close()
	if err := f.Truncate(size0); err != nil {
		return false, err
	}
	if k, err := q.Submit(Op{Code: OpWrite, File: f, Buf: w, Off: off}); k != 1 {
		return false, fmt.Errorf("submit: %w", err)
	}
	terr := g.Truncate(size1)
	k, err := q.Wait(ctx, 1, out)
	if err != nil || k != 1 {
		return false, fmt.Errorf("wait: %d completions: %v", k, err)
	}
	if terr != nil {
		return false, terr
	}
	if c := out[0]; c.Err != nil || c.N != len(w) {
		return false, fmt.Errorf("write: %d bytes: %w", c.N, c.Err)
	}
	clear(got)
	if k, err := f.ReadAt(got, off); k != len(got) {
		return false, fmt.Errorf("read back: %d bytes: %w", k, err)
	}
	return !bytes.Equal(got, w), nil
}

// PageCollisionName is the file PageCollisionRace works on.
const PageCollisionName = "page-collision"

// PageCollisionRace runs the direct/buffered page collision iterations
// times on t and returns in how many a byte that only the direct write
// wrote did not read back:
//
//  1. a sparse file of 1 MiB;
//  2. an async direct write of 16 KiB at 64 KiB (into the hole);
//  3. at once, through a buffered handle, a 512-byte write at 64 KiB +
//     1024 (inside the direct write's first page and range);
//  4. both complete, the file is synced, and a direct read of the 16 KiB
//     must return the direct write's bytes everywhere outside the buffered
//     write's 512 bytes (there, either write's).
//
// Whatever the order, bytes only the direct write covered must hold its
// data. Linux (ext4, xfs) may lose them: the buffered write reads the page
// before the direct data lands and its write-back puts the old bytes back;
// it logs "Page cache invalidation failure on direct I/O" and the next
// fsync fails with EIO (counted as a pass of the iteration's sync, not as
// an error). aiodio's buffered writes wait for direct I/O in flight (I5).
// As for ExtendTruncateRace, a kernel directory needs DirTarget.URing.
func PageCollisionRace(ctx context.Context, t Target, iterations int) (lost int, err error) {
	q, err := t.NewAsync(2)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	const (
		off  = 64 << 10
		n    = 16 << 10
		boff = off + 1024
		bn   = 512
	)
	w := alignbuf.Alloc(n)
	for i := range w {
		w[i] = byte(0x80 | i*13)
	}
	bw := make([]byte, bn)
	for i := range bw {
		bw[i] = 0x5a
	}
	got := alignbuf.Alloc(n)
	out := make([]Completion, 1)
	defer t.Remove(PageCollisionName)
	for it := 0; it < iterations; it++ {
		if err := ctx.Err(); err != nil {
			return lost, err
		}
		if err := t.Remove(PageCollisionName); err != nil && !errors.Is(err, syscall.ENOENT) {
			return lost, err
		}
		bad, err := func() (bool, error) {
			f, err := t.OpenFile(PageCollisionName, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
			if err != nil {
				return false, err
			}
			defer f.Close()
			g, err := t.OpenFile(PageCollisionName, os.O_RDWR, 0o644)
			if err != nil {
				return false, err
			}
			defer g.Close()
			if err := f.Truncate(1 << 20); err != nil {
				return false, err
			}
			if k, err := q.Submit(Op{Code: OpWrite, File: f, Buf: w, Off: off}); k != 1 {
				return false, fmt.Errorf("submit: %w", err)
			}
			_, berr := g.WriteAt(bw, boff)
			k, err := q.Wait(ctx, 1, out)
			if err != nil || k != 1 {
				return false, fmt.Errorf("wait: %d completions: %v", k, err)
			}
			if berr != nil {
				return false, berr
			}
			if c := out[0]; c.Err != nil || c.N != len(w) {
				return false, fmt.Errorf("direct write: %d bytes: %w", c.N, c.Err)
			}
			if err := g.Sync(); err != nil && !errors.Is(err, syscall.EIO) {
				return false, err
			}
			clear(got)
			if k, err := f.ReadAt(got, off); k != len(got) {
				return false, fmt.Errorf("read back: %d bytes: %w", k, err)
			}
			lo, hi := boff-off, boff-off+bn
			return !bytes.Equal(got[:lo], w[:lo]) || !bytes.Equal(got[hi:], w[hi:]), nil
		}()
		if err != nil {
			return lost, fmt.Errorf("page-collision iteration %d: %w", it, err)
		}
		if bad {
			lost++
		}
	}
	return lost, nil
}
