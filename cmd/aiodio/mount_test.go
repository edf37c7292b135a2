package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/internal/testenv"
	"golang.org/x/sys/unix"
)

// mountCLI runs `aiodio mount IMG DIR` in the background on a new volume.
// It returns once the command said the volume is mounted.
type mountCLI struct {
	img, dir string
	cancel   context.CancelFunc // a SIGINT
	code     chan int           // the exit status
	stderr   chan string        // stderr lines
	stdout   *bufio.Scanner
}

func startMount(t *testing.T, extra ...string) *mountCLI {
	t.Helper()
	testenv.NeedRoot(t)
	_, err := os.Stat("/dev/fuse")
	testenv.Need(t, "fuse", err == nil, "/dev/fuse is missing")
	img := filepath.Join(t.TempDir(), "vol.img")
	if err := aiodio.Mkfs(img, aiodio.MkfsOptions{Size: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	or, ow := io.Pipe()
	er, ew := io.Pipe()
	m := &mountCLI{img: img, dir: dir, cancel: cancel, code: make(chan int, 1), stderr: make(chan string, 16), stdout: bufio.NewScanner(or)}
	go func() {
		sc := bufio.NewScanner(er)
		for sc.Scan() {
			t.Logf("stderr: %s", sc.Text())
			select {
			case m.stderr <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		code := run(ctx, append([]string{"mount", img, dir}, extra...), ow, ew)
		ow.Close()
		ew.Close()
		m.code <- code
	}()
	t.Cleanup(func() {
		cancel()
		for m.stdout.Scan() { // let the command finish its output
		}
		if mounted(dir) {
			t.Errorf("%s still mounted at the end of the test: detaching it", dir)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	if !m.stdout.Scan() || !strings.Contains(m.stdout.Text(), "mounted on") {
		t.Fatalf("aiodio mount did not report the mount: %q (exit %d)", m.stdout.Text(), <-m.code)
	}
	return m
}

// exit waits for the command and returns its status and last stdout line.
func (m *mountCLI) exit() (int, string) {
	var last string
	for m.stdout.Scan() {
		last = m.stdout.Text()
	}
	return <-m.code, last
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// checkPersisted reopens the image with the Go API: name holds want, and
// the volume is fsck clean.
func checkPersisted(t *testing.T, img, name, want string) {
	t.Helper()
	if findings, err := aiodio.Fsck(img); err != nil || len(findings) > 0 {
		t.Errorf("fsck after the mount: %v %q", err, findings)
	}
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	f, err := v.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, len(want)+1)
	n, _ := f.ReadAt(b, 0)
	if string(b[:n]) != want {
		t.Errorf("%s after the mount: %q, want %q", name, b[:n], want)
	}
}

// TestMountExternalUnmount: files written through `aiodio mount` are in
// the volume after an external umount, which ends the command with 0
// after it closed the volume (reopen and fsck prove it).
func TestMountExternalUnmount(t *testing.T) {
	m := startMount(t)
	if err := os.WriteFile(filepath.Join(m.dir, "hello"), []byte("through the mount"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(m.dir, 0); err != nil {
		t.Fatal(err)
	}
	code, last := m.exit()
	if code != 0 || !strings.Contains(last, "volume closed") {
		t.Fatalf("exit %d, last line %q", code, last)
	}
	checkPersisted(t, m.img, "hello", "through the mount")
}

// TestMountSignal: a signal (the context's end) unmounts and closes the
// volume, exit 0; with a descriptor still open the mount is detached and
// the command waits for it to be closed.
func TestMountSignal(t *testing.T) {
	m := startMount(t)
	f, err := os.Create(filepath.Join(m.dir, "busy"))
	if err != nil {
		t.Fatal(err)
	}
	// Closed before startMount's cleanup waits for the command, which
	// waits for this last user, should the test fail early.
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString("still open"); err != nil {
		t.Fatal(err)
	}
	m.cancel()
	if line := <-m.stderr; !strings.Contains(line, "busy") {
		t.Errorf("stderr: %q, want the busy notice", line)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	code, last := m.exit()
	if code != 0 || !strings.Contains(last, "volume closed") {
		t.Fatalf("exit %d, last line %q", code, last)
	}
	if mounted(m.dir) {
		t.Errorf("%s still mounted", m.dir)
	}
	checkPersisted(t, m.img, "busy", "still open")
}

// TestMountReadOnly: --read-only refuses writes with EROFS.
func TestMountReadOnly(t *testing.T) {
	m := startMount(t, "--read-only")
	_, err := os.Create(filepath.Join(m.dir, "x"))
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("create on a read-only mount: %v, want EROFS", err)
	}
	m.cancel()
	if code, _ := m.exit(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestMountUsage: wrong arguments are usage errors (exit 2).
func TestMountUsage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "vol.img")
	if code, _, _ := cli(t, "mount", img); code != exitUsage {
		t.Errorf("one argument: exit %d", code)
	}
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := cli(t, "mount", img, img); code != exitUsage {
		t.Errorf("a file as the mount point: exit %d", code)
	}
	if code, _, _ := cli(t, "mount", "--engine", "bogus", img, t.TempDir()); code != exitUsage {
		t.Errorf("unknown engine: exit %d", code)
	}
}
