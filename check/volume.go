package check

import (
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device"
)

// VolumeTarget is an aiodio volume. Its files are *aiodio.File; its async
// queue is an aiodio.Ring. It can be closed and reopened (Reopener), and
// runs fsck on the closed volume when it does (Checker).
type VolumeTarget struct {
	name string
	o    aiodio.Options
	open func() (*aiodio.Volume, error)
	fsck func() ([]string, error)

	// mu protects v and findings against a concurrent Reopen/Close.
	mu       sync.Mutex
	v        *aiodio.Volume
	findings []string
}

// OpenVolume opens the aiodio volume on the image file or block device at
// path as a Target.
func OpenVolume(path string, o aiodio.Options) (*VolumeTarget, error) {
	return newVolumeTarget("volume:"+path, o,
		func() (*aiodio.Volume, error) { return aiodio.Open(path, o) },
		func() ([]string, error) { return aiodio.Fsck(path) })
}

// OpenVolumeDevice opens the aiodio volume on d as a Target. Closing the
// target does not close d.
func OpenVolumeDevice(d device.Device, o aiodio.Options) (*VolumeTarget, error) {
	return newVolumeTarget(fmt.Sprintf("volume:%s-device", d.Info().Engine), o,
		func() (*aiodio.Volume, error) { return aiodio.OpenDevice(d, o) },
		func() ([]string, error) { return aiodio.FsckDevice(d) })
}

func newVolumeTarget(name string, o aiodio.Options, open func() (*aiodio.Volume, error), fsck func() ([]string, error)) (*VolumeTarget, error) {
	v, err := open()
	if err != nil {
		return nil, err
	}
	return &VolumeTarget{name: fmt.Sprintf("%s(hole=%v,strict=%v)", name, o.HolePolicy, o.StrictAlignment),
		o: o, open: open, fsck: fsck, v: v}, nil
}

// Volume returns the open volume.
func (t *VolumeTarget) Volume() *aiodio.Volume {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.v
}

func (t *VolumeTarget) String() string { return t.name }

func (t *VolumeTarget) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := t.Volume().OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (t *VolumeTarget) Remove(name string) error { return t.Volume().Remove(name) }

func (t *VolumeTarget) Stat(name string) (fs.FileInfo, error) { return t.Volume().Stat(name) }

func (t *VolumeTarget) Sync() error { return t.Volume().Sync() }

func (t *VolumeTarget) UnalignedDirect() bool { return !t.o.StrictAlignment }

// Check returns the findings of the open volume's metadata check, plus
// those of fsck at the last Reopen.
func (t *VolumeTarget) Check() ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.findings...)
	f, err := t.v.Fsck()
	return append(out, f...), err
}

// Reopen closes the volume, runs fsck on it, and opens it again.
func (t *VolumeTarget) Reopen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.v.Close(); err != nil {
		return fmt.Errorf("reopen: close: %w", err)
	}
	f, err := t.fsck()
	if err != nil {
		return fmt.Errorf("reopen: fsck: %w", err)
	}
	for _, s := range f {
		t.findings = append(t.findings, "fsck after close: "+s)
	}
	v, err := t.open()
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	t.v = v
	return nil
}

// Close closes the volume.
func (t *VolumeTarget) Close() error { return t.Volume().Close() }

// OpenTarget opens path for `aiodio check`: a directory is a kernel
// directory target (DirTarget), anything else an aiodio volume image or
// block device (OpenVolume with o).
func OpenTarget(path string, o aiodio.Options) (Target, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return NewDirTarget(path)
	}
	return OpenVolume(path, o)
}
