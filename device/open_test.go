package device_test

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/devicetest"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/testenv"
	"github.com/aiodio/aiodio/internal/uring"
)

const imgSize = 16 << 20

func needUring(t testing.TB) {
	t.Helper()
	err := uring.Probe()
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	testenv.Need(t, "io_uring", err == nil, "io_uring_setup: "+reason)
}

func openImage(t *testing.T, dir, engine string) device.Device {
	t.Helper()
	path := filepath.Join(dir, "img")
	d, err := device.Open(path, device.OpenOptions{Engine: engine, Create: true, Size: imgSize})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Info().Engine; got != engine {
		t.Fatalf("engine %q, want %q", got, engine)
	}
	return d
}

func shmDir(t *testing.T) string {
	t.Helper()
	_, err := os.Stat("/dev/shm")
	testenv.Need(t, "shm", err == nil, "/dev/shm missing")
	dir, err := os.MkdirTemp("/dev/shm", "aiodio-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestUringImageConformance(t *testing.T) {
	needUring(t)
	devicetest.Run(t, func(t *testing.T) device.Device { return openImage(t, t.TempDir(), "uring") })
}

func TestThreadsImageConformance(t *testing.T) {
	devicetest.Run(t, func(t *testing.T) device.Device { return openImage(t, t.TempDir(), "threads") })
}

func TestUringShmConformance(t *testing.T) {
	needUring(t)
	devicetest.Run(t, func(t *testing.T) device.Device { return openImage(t, shmDir(t), "uring") })
}

func TestThreadsShmConformance(t *testing.T) {
	devicetest.Run(t, func(t *testing.T) device.Device { return openImage(t, shmDir(t), "threads") })
}

// loopDevice makes a 4096-byte-sector loop device with direct I/O over an
// image in dir and detaches it at cleanup.
func loopDevice(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	losetup := testenv.NeedCommand(t, "losetup")
	img := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, imgSize); err != nil {
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
	return dev
}

func TestLoopDevice4K(t *testing.T) {
	dev := loopDevice(t)
	for _, engine := range []string{"uring", "threads"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "uring" {
				needUring(t)
			}
			open := func(t *testing.T) device.Device {
				d, err := device.Open(dev, device.OpenOptions{Engine: engine})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			d := open(t)
			in := d.Info()
			if in.LogicalBlockSize != 4096 || in.Size != imgSize || in.Cached {
				t.Errorf("loop device info %+v: want LogicalBlockSize 4096, Size %d, not cached", in, imgSize)
			}
			// 512-aligned I/O is refused by Submit.
			r := &device.Request{Kind: device.Read, Off: 512, Buf: alignbuf.Alloc(4096), Done: func(*device.Request) { t.Error("rejected request completed") }}
			if n, err := d.Submit(r); n != 0 || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "4096") {
				t.Errorf("512-aligned offset: Submit = %d, %v; want EINVAL naming 4096", n, err)
			}
			r = &device.Request{Kind: device.Read, Off: 0, Buf: alignbuf.Alloc(512), Done: func(*device.Request) { t.Error("rejected request completed") }}
			if n, err := d.Submit(r); n != 0 || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("512-byte read: Submit = %d, %v; want EINVAL", n, err)
			}
			d.Close()
			devicetest.Run(t, open)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		path string
		o    device.OpenOptions
		want error
	}{
		{"missing", filepath.Join(dir, "nope"), device.OpenOptions{}, syscall.ENOENT},
		{"missing parent", filepath.Join(dir, "a", "b"), device.OpenOptions{Create: true, Size: 1 << 20}, syscall.ENOENT},
		{"directory", dir, device.OpenOptions{}, syscall.EISDIR},
		{"empty path", "", device.OpenOptions{}, syscall.EINVAL},
		{"bad engine", filepath.Join(dir, "x"), device.OpenOptions{Engine: "spdk", Create: true, Size: 1 << 20}, syscall.EINVAL},
		{"negative size", filepath.Join(dir, "y"), device.OpenOptions{Create: true, Size: -1}, syscall.EINVAL},
		{"empty image", filepath.Join(dir, "z"), device.OpenOptions{Create: true}, syscall.EINVAL},
		{"char device", "/dev/null", device.OpenOptions{}, syscall.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := device.Open(c.path, c.o)
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want %v", c.want)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Open: %v; want %v", err, c.want)
			}
		})
	}
	// Too small for the size asked for.
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := device.Open(small, device.OpenOptions{Size: 1 << 20}); !errors.Is(err, syscall.ENOSPC) {
		if d != nil {
			d.Close()
		}
		t.Fatalf("Open too small: %v; want ENOSPC", err)
	}
}

func TestOpenExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	d, err := device.Open(path, device.OpenOptions{Create: true, Size: 1 << 20, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// flock is per open file description: a second open conflicts like another process would.
	d2, err := device.Open(path, device.OpenOptions{Exclusive: true})
	if err == nil {
		d2.Close()
		t.Fatal("second exclusive open succeeded")
	}
	if !errors.Is(err, syscall.EBUSY) || !errors.Is(err, syscall.EWOULDBLOCK) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second exclusive open: %v; want an in-use error wrapping EBUSY and EWOULDBLOCK", err)
	}
}

func TestOpenCreateSparseAndAuto(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	d, err := device.Open(path, device.OpenOptions{Create: true, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	in := d.Info()
	d.Close()
	if in.Size != 64<<20 || in.MaxIO != device.DefaultMaxIO {
		t.Fatalf("info %+v", in)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		t.Fatal(err)
	}
	if uring.Probe() == nil && sfs.Type != unix.TMPFS_MAGIC && in.Engine != "uring" {
		t.Fatalf("auto picked %q although io_uring works", in.Engine)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= 64<<20 {
		t.Fatalf("image is not sparse: %d blocks", st.Blocks)
	}
	// Reopen without Create keeps the size; ReadOnly reads work.
	d, err = device.Open(path, device.OpenOptions{ReadOnly: true, Engine: "threads"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Info().Size != 64<<20 {
		t.Fatalf("reopened size %d", d.Info().Size)
	}
}

// TestAutoPrefersThreadsOnTmpfs: on tmpfs io_uring punts every request to
// io-wq, so auto picks the thread pool there; an explicit "uring" is kept.
func TestAutoPrefersThreadsOnTmpfs(t *testing.T) {
	dir := shmDir(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	testenv.Need(t, "shm", sfs.Type == unix.TMPFS_MAGIC, "/dev/shm is not tmpfs")
	d, err := device.Open(filepath.Join(dir, "auto.img"), device.OpenOptions{Create: true, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	eng := d.Info().Engine
	d.Close()
	if eng != "threads" {
		t.Fatalf("auto on tmpfs picked %q, want threads", eng)
	}
	if uring.Probe() != nil {
		return
	}
	d, err = device.Open(filepath.Join(dir, "uring.img"), device.OpenOptions{Engine: "uring", Create: true, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	eng = d.Info().Engine
	d.Close()
	if eng != "uring" {
		t.Fatalf("engine uring on tmpfs gave %q", eng)
	}
}

// TestShortTransferResubmitted shrinks the image behind the device's back:
// a read across the new end gets a short transfer, which the engine
// resubmits for the remainder; that gets 0 bytes and the request fails with
// EIO, N counting exactly the bytes that were read.
func TestShortTransferResubmitted(t *testing.T) {
	for _, engine := range []string{"uring", "threads"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "uring" {
				needUring(t)
			}
			path := filepath.Join(t.TempDir(), "img")
			d, err := device.Open(path, device.OpenOptions{Engine: engine, Create: true, Size: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			lbs := d.Info().LogicalBlockSize
			want := alignbuf.Alloc(8 * lbs)
			for i := range want {
				want[i] = byte(i*7 + 1)
			}
			done := make(chan *device.Request, 1)
			w := &device.Request{Kind: device.Write, Off: 0, Buf: want, Done: func(r *device.Request) { done <- r }}
			if _, err := d.Submit(w); err != nil {
				t.Fatal(err)
			}
			if r := <-done; r.Err != nil {
				t.Fatal(r.Err)
			}
			if err := os.Truncate(path, int64(3*lbs)); err != nil {
				t.Fatal(err)
			}
			got := alignbuf.Alloc(8 * lbs)
			r := &device.Request{Kind: device.Read, Off: 0, Buf: got, Done: func(r *device.Request) { done <- r }}
			if _, err := d.Submit(r); err != nil {
				t.Fatal(err)
			}
			<-done
			if !errors.Is(r.Err, syscall.EIO) || r.N != 3*lbs {
				t.Fatalf("read across a shrunk end: N=%d err=%v; want N=%d and EIO", r.N, r.Err, 3*lbs)
			}
			if string(got[:3*lbs]) != string(want[:3*lbs]) {
				t.Fatal("the bytes before the end differ")
			}
			// Vectored, with the end inside the second buffer.
			bufs := [][]byte{alignbuf.Alloc(2 * lbs), alignbuf.Alloc(4 * lbs)}
			r = &device.Request{Kind: device.Read, Off: 0, Bufs: bufs, Done: func(r *device.Request) { done <- r }}
			if _, err := d.Submit(r); err != nil {
				t.Fatal(err)
			}
			<-done
			if !errors.Is(r.Err, syscall.EIO) || r.N != 3*lbs {
				t.Fatalf("vectored read across a shrunk end: N=%d err=%v; want N=%d and EIO", r.N, r.Err, 3*lbs)
			}
		})
	}
}

// TestSmallQueueDepth runs the suite with a tiny ring / pool, so most
// requests wait in the backlog for a free slot.
func TestSmallQueueDepth(t *testing.T) {
	for _, engine := range []string{"uring", "threads"} {
		t.Run(engine, func(t *testing.T) {
			if engine == "uring" {
				needUring(t)
			}
			devicetest.Run(t, func(t *testing.T) device.Device {
				d, err := device.Open(filepath.Join(t.TempDir(), "img"), device.OpenOptions{Engine: engine, Create: true, Size: imgSize, QueueDepth: 2})
				if err != nil {
					t.Fatal(err)
				}
				return d
			})
		})
	}
}

func TestOpenLogsEngine(t *testing.T) {
	for _, engine := range []string{"auto", "threads"} {
		var buf strings.Builder
		log := slog.New(slog.NewTextHandler(&buf, nil))
		d, err := device.Open(filepath.Join(t.TempDir(), "img"), device.OpenOptions{Engine: engine, Create: true, Size: 1 << 20, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		got := d.Info().Engine
		d.Close()
		if !strings.Contains(buf.String(), "engine="+got) {
			t.Fatalf("engine %s: log %q does not name the engine %q", engine, buf.String(), got)
		}
	}
}
