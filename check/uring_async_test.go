package check

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
)

// TestURingAsyncKernelDir drives a kernel directory's async queue with
// URing: it is io_uring (not goroutines), many ops of one file run at once, data
// written by the ring reads back through it, a read across end of file
// completes short with io.EOF, the op's RWF_* flags reach the kernel (an
// unknown flag gets the kernel's EOPNOTSUPP), a rejected op is never
// completed, and Close waits for what is in flight.
func TestURingAsyncKernelDir(t *testing.T) {
	tg, err := NewDirTarget(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tg.URing = true
	f, err := tg.OpenFile("f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q, err := tg.NewAsync(32)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.(*uringAsync); !ok {
		t.Fatalf("kernel directory async queue is %T, want io_uring", q)
	}
	ctx := context.Background()
	out := make([]Completion, 32)
	reap := func(n int) []Completion {
		t.Helper()
		k, err := q.Wait(ctx, n, out)
		if err != nil || k != n {
			t.Fatalf("Wait(%d) = %d, %v", n, k, err)
		}
		return out[:k]
	}

	const blocks = 16
	bufs := make([][]byte, blocks)
	ops := make([]Op, blocks)
	for i := range ops {
		bufs[i] = aiodio.AlignedBuffer(4096)
		for j := range bufs[i] {
			bufs[i][j] = byte(i*7 + j)
		}
		ops[i] = Op{Code: OpWrite, File: f, Buf: bufs[i], Off: int64(i) * 4096, UserData: uint64(i)}
	}
	if n, err := q.Submit(ops...); n != blocks || err != nil {
		t.Fatalf("submit writes: %d, %v", n, err)
	}
	for _, c := range reap(blocks) {
		if c.Err != nil || c.N != 4096 {
			t.Fatalf("write completion %+v", c)
		}
	}
	if n, err := q.Submit(Op{Code: OpFsync, File: f, UserData: 99}); n != 1 || err != nil {
		t.Fatalf("submit fsync: %d, %v", n, err)
	}
	if c := reap(1)[0]; c.Err != nil || c.UserData != 99 {
		t.Fatalf("fsync completion %+v", c)
	}

	// Read back every block at once, and 8 KiB from the last block: 4 KiB
	// and io.EOF.
	got := make([][]byte, blocks)
	for i := range ops {
		got[i] = aiodio.AlignedBuffer(4096)
		ops[i] = Op{Code: OpRead, File: f, Buf: got[i], Off: int64(i) * 4096, UserData: uint64(i)}
	}
	tail := aiodio.AlignedBuffer(8192)
	ops = append(ops, Op{Code: OpRead, File: f, Buf: tail, Off: (blocks - 1) * 4096, UserData: 100})
	if n, err := q.Submit(ops...); n != len(ops) || err != nil {
		t.Fatalf("submit reads: %d, %v", n, err)
	}
	for _, c := range reap(len(ops)) {
		if c.UserData == 100 {
			if c.N != 4096 || !errors.Is(c.Err, io.EOF) {
				t.Fatalf("read across end of file: %+v, want 4096 bytes and io.EOF", c)
			}
			continue
		}
		if c.Err != nil || c.N != 4096 || !bytes.Equal(got[c.UserData], bufs[c.UserData]) {
			t.Fatalf("read of block %d: %+v, data equal %v", c.UserData, c, bytes.Equal(got[c.UserData], bufs[c.UserData]))
		}
	}
	if !bytes.Equal(tail[:4096], bufs[blocks-1]) {
		t.Fatal("read across end of file: wrong bytes")
	}

	// An rw_flags bit the kernel does not know: its error, not ours.
	if n, err := q.Submit(Op{Code: OpRead, File: f, Buf: got[0], Flags: 1 << 30, UserData: 7}); n != 1 || err != nil {
		t.Fatalf("submit with an unknown flag: %d, %v", n, err)
	}
	if c := reap(1)[0]; !errors.Is(c.Err, syscall.EOPNOTSUPP) {
		t.Fatalf("unknown rw flag: %+v, want EOPNOTSUPP from the kernel", c)
	}

	// Rejected ops: never completed.
	if n, err := q.Submit(Op{Code: OpRead, Buf: got[0]}); n != 0 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("nil file: %d, %v", n, err)
	}
	if n, err := q.Submit(Op{Code: OpRead, File: f, Buf: got[0], Off: -1}); n != 0 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative offset: %d, %v", n, err)
	}
	if k, err := q.Wait(ctx, 0, out); k != 0 || err != nil {
		t.Fatalf("completions of rejected ops: %d, %v", k, err)
	}

	// Close with ops in flight waits for them; then the queue refuses ops.
	if n, err := q.Submit(ops[:blocks]...); n != blocks || err != nil {
		t.Fatalf("submit before close: %d, %v", n, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if k, _ := q.Wait(ctx, 0, out); k != blocks {
		t.Fatalf("%d completions after Close, want %d", k, blocks)
	}
	if n, err := q.Submit(ops[0]); n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("submit after close: %d, %v", n, err)
	}

	tg.URing = false
	g, err := tg.NewAsync(4)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, ok := g.(*goAsync); !ok {
		t.Fatalf("default kernel directory queue is %T, want goroutines", g)
	}
}
