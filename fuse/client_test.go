package fuse

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/check"
)

// The workloads that use io_uring run in a child process (this test
// binary, re-executed with AIODIO_FUSE_CLIENT set), never in the process
// that serves the mount: a thread of the serving process that the kernel
// holds in a FUSE request (io_uring completes work on its submitter's
// threads) can stall the Go runtime's stop-the-world, which the daemon's
// goroutines need to answer that very request — a deadlock that was
// observed here with the check exerciser in-process. Real users are other
// processes too.

func TestMain(m *testing.M) {
	if mode := os.Getenv("AIODIO_FUSE_CLIENT"); mode != "" {
		os.Exit(clientMain(mode, os.Getenv("AIODIO_FUSE_DIR")))
	}
	os.Exit(m.Run())
}

// runClient runs the client mode on dir in a child process and returns its
// stdout lines as they come; wait returns its exit error.
func runClient(t *testing.T, mode, dir string) (lines <-chan string, wait func() error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AIODIO_FUSE_CLIENT="+mode, "AIODIO_FUSE_DIR="+dir)
	cmd.Stderr = tlogWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	var once sync.Once
	var werr error
	wait = func() error {
		once.Do(func() {
			for range ch { // drain what the test did not read
			}
			<-done
			werr = cmd.Wait()
		})
		return werr
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			wait()
		}
	})
	return ch, wait
}

// clientMain is the child process: it runs mode against the mount dir,
// prints its results on stdout and returns the exit status.
func clientMain(mode, dir string) int {
	tg, err := check.NewDirTarget(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tg.URing = true
	switch mode {
	case "check-goroutines", "check-uring":
		tg.URing = mode == "check-uring"
		rep, err := check.Run(context.Background(), mountTarget{tg}, check.Config{Seed: 20261122, Ops: 800, Files: 4, MaxFileSize: 512 << 10})
		fmt.Println(strings.ReplaceAll(rep.String(), "\n", " | "))
		fmt.Printf("ops=%d mismatches=%d poison=%d errors=%d verified=%d\n", rep.Ops, rep.Mismatches, rep.PoisonBytes, rep.Errors, rep.BytesVerified)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	case "races":
		for _, race := range []struct {
			name string
			run  func(context.Context, check.Target, int) (int, error)
		}{
			{check.ExtendTruncateName, check.ExtendTruncateRace},
			{check.PageCollisionName, check.PageCollisionRace},
		} {
			lost, err := race.run(context.Background(), mountTarget{tg}, 200)
			fmt.Printf("%s lost=%d err=%v\n", race.name, lost, err)
		}
	case "parked-write":
		return parkedWrite(tg)
	default:
		fmt.Fprintln(os.Stderr, "unknown client mode", mode)
		return 2
	}
	return 0
}

// parkedWrite submits one async direct write of pattern(16 KiB, 99) at 0
// of "s" through io_uring, says "submitted", and says "done N ERR" when it
// completed.
func parkedWrite(tg *check.DirTarget) int {
	df, err := tg.OpenFile("s", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer df.Close()
	q, err := tg.NewAsync(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer q.Close()
	nw := aiodio.AlignedBuffer(16 << 10)
	copy(nw, pattern(len(nw), 99))
	if k, err := q.Submit(check.Op{Code: check.OpWrite, File: df, Buf: nw, Off: 0, UserData: 1}); k != 1 {
		fmt.Fprintln(os.Stderr, "submit:", err)
		return 1
	}
	fmt.Println("submitted")
	out := make([]check.Completion, 1)
	k, err := q.Wait(context.Background(), 1, out)
	if k != 1 {
		fmt.Fprintln(os.Stderr, "wait:", err)
		return 1
	}
	fmt.Printf("done %d %v\n", out[0].N, out[0].Err)
	return 0
}

// TestCheckOnMount runs the check exerciser (random concurrent buffered,
// direct and async ops against a model, seeded) on the mount, over an
// image poisoned before mkfs: no mismatch, no poison byte, no unexpected
// error. The io_uring variant sends the async ops through io_uring, so the
// kernel's async direct I/O path to FUSE (CAP_ASYNC_DIO) is what runs.
func TestCheckOnMount(t *testing.T) {
	for _, mode := range []string{"check-goroutines", "check-uring"} {
		t.Run(mode, func(t *testing.T) {
			m := mountImage(t, 64<<20, check.DefaultPoison, aiodio.Options{}, Options{})
			lines, wait := runClient(t, mode, m.dir)
			var last string
			for l := range lines {
				t.Log(l)
				last = l
			}
			if err := wait(); err != nil {
				t.Fatalf("check failed: %v", err)
			}
			var ops, mis, poison, errs, verified int64
			if _, err := fmt.Sscanf(last, "ops=%d mismatches=%d poison=%d errors=%d verified=%d", &ops, &mis, &poison, &errs, &verified); err != nil {
				t.Fatalf("report %q: %v", last, err)
			}
			if ops < 800 || mis != 0 || poison != 0 || errs != 0 || verified == 0 {
				t.Errorf("report: %s", last)
			}
		})
	}
}

// TestRacesOnMount runs check's named AIO-DIO races on the mount through
// io_uring (so the kernel sends the async direct write to the daemon while
// the other call runs): an extending direct write racing a truncate that
// raises the size (seed 000 family), and a direct write racing a buffered
// write into its first page (seed 004 family). No iteration may lose the
// direct write's bytes.
func TestRacesOnMount(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	lines, wait := runClient(t, "races", m.dir)
	n := 0
	for l := range lines {
		n++
		if !strings.Contains(l, "lost=0 err=<nil>") {
			t.Errorf("race: %s", l)
		}
	}
	if err := wait(); err != nil || n != 2 {
		t.Errorf("races client: %v, %d results", err, n)
	}
}

// TestNoStaleKernelCache is why every open returns FOPEN_DIRECT_IO: a
// buffered read that runs while an async direct write of the same range is
// in the daemon returns the old bytes (fine: they were concurrent), and
// after the write completed a buffered read must return the new ones. With
// the kernel's page cache kept (FOPEN_KEEP_CACHE instead), the first read
// leaves the old bytes cached in the kernel, and Linux does not invalidate
// the range again when an async FUSE direct write completes: the second
// read returns stale data from the kernel while aiodio holds the new.
// (Checked by hand: with openFlags = FOPEN_KEEP_CACHE this test fails.)
func TestNoStaleKernelCache(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	old := pattern(16<<10, 1)
	if err := os.WriteFile(m.path("s"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	bf, err := os.Open(m.path("s"))
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()

	// Park the client's direct write in the daemon until the buffered
	// read is done.
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(direct bool) {
		if direct {
			once.Do(func() { close(arrived); <-release })
		}
	}
	testHookWrite.Store(&hook)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer func() { releaseOnce(); testHookWrite.Store(nil) }() // also when the test fails: unmount needs the write answered
	lines, wait := runClient(t, "parked-write", m.dir)
	if l := recvWithin(t, lines, "the client's submission"); l != "submitted" {
		t.Fatalf("client: %q", l)
	}
	recvWithin(t, arrived, "the direct write at the daemon")
	got := make([]byte, len(old))
	if _, err := bf.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "buffered read while the direct write is parked", got, old)
	releaseOnce()
	if l := recvWithin(t, lines, "the client's completion"); l != fmt.Sprintf("done %d <nil>", len(old)) {
		t.Fatalf("client: %q", l)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := bf.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "buffered read after the direct write completed", got, pattern(16<<10, 99))
}

// mountTarget is the check target of a mount: a kernel directory whose
// fsyncs never report direct/buffered collisions with EIO (the mount has
// one cache, so an EIO there is a failure). Its async ops with RWF_NOWAIT
// are refused by Linux with EOPNOTSUPP on FUSE files before the daemon sees
// them; the exerciser counts that as a refusal (check.noWaitRefused).
type mountTarget struct{ *check.DirTarget }

func (mountTarget) StalePageCacheEIO() bool { return false }

// recvWithin receives from ch, failing the test (whose cleanups then
// unmount) if nothing comes within a minute: a hang detector, not a timing
// assertion.
func recvWithin[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("hang: no %s within a minute", what)
		panic("unreachable")
	}
}
