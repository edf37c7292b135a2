package check

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// VolumeTarget is an aiodio volume. Its files are *aiodio.File; its async
// queue is an aiodio.Ring. It can be closed and reopened (Reopener), and
// runs fsck on the closed volume when it does (Checker).
type VolumeTarget struct {
	name string
	o    aiodio.Options
	open func() (*aiodio.Volume, error)
	fsck func() ([]string, error)

	// mu protects v, findings and the sim fields against a concurrent
	// Reopen/Crash/Close.
	mu       sync.Mutex
	v        *aiodio.Volume
	findings []string
	sim      *sim.Device // OpenVolumeSim: the current device
	simOwned bool        // sim was made by Crash: Close closes it
	crashOpt sim.CrashOptions
}

// OpenVolumeSim opens the aiodio volume on the simulated device d as a
// Target that can also lose power (Crasher): Crash cuts the power with co
// (its Seed replaced by Crash's) and mounts the surviving image. Closing the
// target does not close d (it closes the devices Crash made).
func OpenVolumeSim(d *sim.Device, o aiodio.Options, co sim.CrashOptions) (*VolumeTarget, error) {
	t := &VolumeTarget{name: fmt.Sprintf("volume:sim(hole=%v,strict=%v)", o.HolePolicy, o.StrictAlignment), o: o, sim: d, crashOpt: co}
	t.open = func() (*aiodio.Volume, error) { return aiodio.OpenDevice(t.sim, o) } // t.mu held by callers after creation
	t.fsck = func() ([]string, error) { return aiodio.FsckDevice(t.sim) }
	v, err := t.open()
	if err != nil {
		return nil, err
	}
	t.v = v
	return t, nil
}

// Crash cuts the power of a target opened with OpenVolumeSim and mounts
// the surviving image.
func (t *VolumeTarget) Crash(seed int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sim == nil {
		return fmt.Errorf("crash %s: not a sim volume: %w", t.name, errNotSupported)
	}
	co := t.crashOpt
	co.Seed = seed
	nd := t.sim.Crash(co)
	t.v.Close() // its device is dead: writeback and checkpoint fail; ignored
	if t.simOwned {
		t.sim.Close()
	}
	t.sim, t.simOwned = nd, true
	v, err := t.open()
	if err != nil {
		return fmt.Errorf("mount after crash: %w", err)
	}
	t.v = v
	return nil
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

// Close closes the volume (and a device made by Crash).
func (t *VolumeTarget) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.v.Close()
	if t.simOwned {
		err = errors.Join(err, t.sim.Close())
		t.simOwned = false
	}
	return err
}

// Device returns the current sim device of a target opened with
// OpenVolumeSim (a new one after each Crash), or nil.
func (t *VolumeTarget) Device() *sim.Device {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sim
}

var errNotSupported = fmt.Errorf("%w", syscall.ENOTSUP)

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
