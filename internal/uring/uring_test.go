package uring

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/aiodio/aiodio/internal/testenv"
)

func needUring(t testing.TB) {
	t.Helper()
	err := Probe()
	testenv.Need(t, "io_uring", err == nil, "io_uring_setup: "+errString(err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestSizes(t *testing.T) {
	if unsafe.Sizeof(Params{}) != 120 || unsafe.Sizeof(SQE{}) != 64 || unsafe.Sizeof(CQE{}) != 16 {
		t.Fatal("ABI struct sizes wrong")
	}
}

func TestNopManyGoroutines(t *testing.T) {
	for _, db := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "doorbell"}[db], func(t *testing.T) { nopManyGoroutines(t, db) })
	}
}

func nopManyGoroutines(t *testing.T, doorbell bool) {
	needUring(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	var sem = make(chan struct{}, 63) // bound in-flight to the ring size (less the doorbell)
	q, err := NewQueue(64, func(ud uint64, res int32) {
		<-sem
		mu.Lock()
		seen[ud]++
		mu.Unlock()
		if res != 0 {
			t.Errorf("nop res %d", res)
		}
		wg.Done()
	}, QueueOptions{Doorbell: doorbell})
	if err != nil {
		t.Fatal(err)
	}
	if doorbell && q.Entries() != 63 {
		t.Fatalf("doorbell queue has %d entries for callers, want 63", q.Entries())
	}
	const G, N = 8, 500
	var sub sync.WaitGroup
	for g := 0; g < G; g++ {
		sub.Add(1)
		go func(g int) {
			defer sub.Done()
			for i := 0; i < N; i++ {
				sem <- struct{}{}
				wg.Add(1)
				q.Lock()
				e := q.SQE()
				if e == nil {
					q.mu.Unlock()
					t.Error("SQ full")
					<-sem
					wg.Done()
					return
				}
				e.Opcode = OpNop
				e.UserData = uint64(g*N + i)
				q.Commit()
			}
		}(g)
	}
	sub.Wait()
	wg.Wait()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != G*N {
		t.Fatalf("saw %d distinct completions, want %d", len(seen), G*N)
	}
	for ud, c := range seen {
		if c != 1 {
			t.Fatalf("user data %d completed %d times", ud, c)
		}
	}
}

func TestReadWriteFile(t *testing.T) {
	needUring(t)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	res := make(chan int32, 4)
	q, err := NewQueue(8, func(ud uint64, r int32) { res <- r }, QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	want := bytes.Repeat([]byte("aiodio!!"), 512)
	q.Lock()
	e := q.SQE()
	e.Opcode, e.Fd, e.Off, e.Addr, e.Len = OpWrite, int32(fd), 4096, uint64(uintptr(unsafe.Pointer(&want[0]))), uint32(len(want))
	q.Commit()
	if r := <-res; r != int32(len(want)) {
		t.Fatalf("write res %d", r)
	}
	got := make([]byte, len(want))
	iov := []unix.Iovec{{Base: &got[0], Len: 1000}, {Base: &got[1000], Len: uint64(len(got) - 1000)}}
	q.Lock()
	e = q.SQE()
	e.Opcode, e.Fd, e.Off, e.Addr, e.Len = OpReadv, int32(fd), 4096, uint64(uintptr(unsafe.Pointer(&iov[0]))), 2
	q.Commit()
	if r := <-res; r != int32(len(want)) {
		t.Fatalf("readv res %d", r)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs")
	}
	q.Lock()
	e = q.SQE()
	e.Opcode, e.Fd, e.OpFlags = OpFsync, int32(fd), FsyncDatasync
	q.Commit()
	if r := <-res; r != 0 {
		t.Fatalf("fsync res %d", r)
	}
	// A bad fd reports -EBADF in the CQE.
	q.Lock()
	e = q.SQE()
	e.Opcode, e.Fd, e.Addr, e.Len = OpRead, 1<<20, uint64(uintptr(unsafe.Pointer(&got[0]))), 512
	q.Commit()
	if r := <-res; r != -int32(unix.EBADF) {
		t.Fatalf("bad fd res %d", r)
	}
}

func TestNopNoAllocs(t *testing.T) {
	for _, db := range []bool{false, true} {
		nopNoAllocs(t, db)
	}
}

func nopNoAllocs(t *testing.T, doorbell bool) {
	needUring(t)
	done := make(chan struct{}, 1)
	q, err := NewQueue(8, func(ud uint64, r int32) { done <- struct{}{} }, QueueOptions{Doorbell: doorbell})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	allocs := testing.AllocsPerRun(2000, func() {
		q.Lock()
		e := q.SQE()
		e.Opcode = OpNop
		q.Commit()
		<-done
	})
	if allocs > 0 {
		t.Fatalf("doorbell %v: %.2f allocations per NOP round trip", doorbell, allocs)
	}
}

// TestFixedBuffers registers buffers and uses them, on a plain queue and
// on a doorbell queue, whose ring is single-issuer (the kernel refuses
// io_uring_register from any thread but the reaper's with EEXIST: running
// the registration on the caller's thread fails this test).
func TestFixedBuffers(t *testing.T) {
	needUring(t)
	for _, doorbell := range []bool{false, true} {
		t.Run(fmt.Sprintf("doorbell=%v", doorbell), func(t *testing.T) { testFixedBuffers(t, doorbell) })
	}
}

func testFixedBuffers(t *testing.T, doorbell bool) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	res := make(chan int32, 1)
	q, err := NewQueue(8, func(ud uint64, r int32) { res <- r }, QueueOptions{Doorbell: doorbell})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Linux 6.0 has SINGLE_ISSUER; this machine's kernel is newer, so a
	// doorbell queue must have it.
	flags := q.Ring().Params().Flags
	if doorbell && flags&SetupSingleIssuer == 0 {
		t.Fatalf("doorbell queue setup flags %#x lack SINGLE_ISSUER", flags)
	}
	if q.singleIssuer != doorbell {
		t.Fatalf("singleIssuer = %v with doorbell %v", q.singleIssuer, doorbell)
	}
	bufs := [][]byte{make([]byte, 8192), make([]byte, 8192)}
	if err := q.RegisterBuffers(bufs); err != nil {
		t.Fatal(err)
	}
	copy(bufs[1], bytes.Repeat([]byte("fixed..."), 1024))
	q.Lock()
	e := q.SQE()
	e.Opcode, e.Fd, e.Off, e.Addr, e.Len, e.BufIndex = OpWriteFixed, int32(fd), 0, uint64(uintptr(unsafe.Pointer(&bufs[1][4096]))), 4096, 1
	q.Commit()
	if r := <-res; r != 4096 {
		t.Fatalf("write fixed res %d", r)
	}
	q.Lock()
	e = q.SQE()
	e.Opcode, e.Fd, e.Off, e.Addr, e.Len, e.BufIndex = OpReadFixed, int32(fd), 0, uint64(uintptr(unsafe.Pointer(&bufs[0][0]))), 4096, 0
	q.Commit()
	if r := <-res; r != 4096 {
		t.Fatalf("read fixed res %d", r)
	}
	if !bytes.Equal(bufs[0][:4096], bufs[1][4096:]) {
		t.Fatal("fixed read differs")
	}
	// An address outside the registered buffer is refused by the kernel.
	other := make([]byte, 4096)
	q.Lock()
	e = q.SQE()
	e.Opcode, e.Fd, e.Addr, e.Len, e.BufIndex = OpReadFixed, int32(fd), uint64(uintptr(unsafe.Pointer(&other[0]))), 4096, 0
	q.Commit()
	if r := <-res; r != -int32(unix.EFAULT) {
		t.Fatalf("read fixed outside the buffer: res %d, want -EFAULT", r)
	}
	if err := q.UnregisterBuffers(); err != nil {
		t.Fatal(err)
	}
	if err := q.RegisterBuffers(nil); err == nil {
		t.Fatal("registering no buffers succeeded")
	}
}

// TestEagerSubmission: with QueueOptions.Eager, what a completion callback
// publishes is in the kernel before the next completion's callback runs.
// Two NOPs are submitted together (they complete inline, so both CQEs are
// usually there when the reaper looks); the first's callback publishes a
// third NOP, and the second's callback records how many published SQEs the
// kernel has not consumed: 0 when eager. Without Eager the reaper submits
// only after running every available callback, so the second callback sees
// the third NOP still unsubmitted (checked by hand: with Eager false it
// fails in 20 of 20 runs, both modes). Run in both doorbell modes.
func TestEagerSubmission(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	for _, doorbell := range []bool{false, true} {
		t.Run(fmt.Sprintf("doorbell=%v", doorbell), func(t *testing.T) {
			var q *Queue
			unsubmittedAtSecond := make(chan uint32, 1)
			third := make(chan struct{})
			ready := make(chan struct{})
			complete := func(ud uint64, res int32) {
				<-ready
				switch ud {
				case 1:
					q.Lock()
					e := q.SQE()
					e.Opcode, e.UserData = OpNop, 3
					q.Commit()
				case 2:
					unsubmittedAtSecond <- q.ring.Unsubmitted()
				case 3:
					close(third)
				}
			}
			var err error
			q, err = NewQueue(8, complete, QueueOptions{Doorbell: doorbell, Eager: true})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			close(ready)
			q.Lock()
			for ud := uint64(1); ud <= 2; ud++ {
				e := q.SQE()
				e.Opcode, e.UserData = OpNop, ud
			}
			q.Commit()
			if n := <-unsubmittedAtSecond; n != 0 {
				t.Errorf("second completion's callback ran with %d published SQE(s) not yet submitted: the first callback's request was not submitted at once", n)
			}
			<-third
		})
	}
}
