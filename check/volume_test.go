package check

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/testenv"
)

// policies are the hole policies every volume stress test runs with
// (StrictAlignment off: unaligned direct I/O is exercised).
var policies = []aiodio.HolePolicy{aiodio.Unwritten, aiodio.BufferedFallback}

const volSize = 64 << 20

// poisonImage writes the poison marker over size bytes of path (created if
// needed) and syncs it: what mkfs leaves of it must never be read.
func poisonImage(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat(DefaultPoison, (1<<20)/len(DefaultPoison))
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk[:min(int64(len(chunk)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// newPoisonedSim is a poisoned sim device of volSize (seed seed, requests
// completing after a jittered latency, in random order), closed when the
// test ends, with a volume of block size bs (0: the default) made on it.
func newPoisonedSim(t *testing.T, seed int64, latency time.Duration, bs int) *sim.Device {
	t.Helper()
	d := sim.New(sim.Options{Size: volSize, Seed: seed, Latency: latency, LatencyJitter: true, Completers: 2})
	t.Cleanup(func() { d.Close() })
	d.Poison(DefaultPoison)
	if err := aiodio.MkfsDevice(d, aiodio.MkfsOptions{BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	return d
}

// closeAtEnd closes tg when the test ends, unless the returned function has
// closed it before: that one fails the test on a close error.
func closeAtEnd(t *testing.T, tg *VolumeTarget) (closeNow func()) {
	closed := false
	t.Cleanup(func() {
		if !closed {
			tg.Close()
		}
	})
	return func() {
		t.Helper()
		closed = true
		if err := tg.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
}

// variantName names a stress variant's subtest: the hole policy, and the
// block size when it is not the default (0).
func variantName(hp aiodio.HolePolicy, blockSize int) string {
	if blockSize == 0 {
		return hp.String()
	}
	return fmt.Sprintf("%s-%dB-blocks", hp, blockSize)
}

// stressVolumePath runs the stress on a poisoned volume at path (an image
// file or a block device), then checks the closed volume with Fsck.
func stressVolumePath(t *testing.T, path string, hp aiodio.HolePolicy, ops int) {
	if err := aiodio.Mkfs(path, aiodio.MkfsOptions{}); err != nil {
		t.Fatalf("mkfs %s: %v", path, err)
	}
	tg, err := OpenVolume(path, aiodio.Options{HolePolicy: hp, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	closeTarget := closeAtEnd(t, tg)
	runStress(t, tg, Config{Ops: ops, MaxFileSize: 512 << 10})
	closeTarget()
	if f, err := aiodio.Fsck(path); err != nil || len(f) != 0 {
		t.Fatalf("fsck after the run: %v %q", err, f)
	}
}

func TestStressPoisonShm(t *testing.T) {
	st, err := os.Stat("/dev/shm")
	testenv.Need(t, "shm", err == nil && st.IsDir(), "/dev/shm is not available")
	for _, hp := range policies {
		t.Run(hp.String(), func(t *testing.T) {
			dir, err := os.MkdirTemp("/dev/shm", "aiodio-check-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			img := filepath.Join(dir, "vol.img")
			poisonImage(t, img, volSize)
			stressVolumePath(t, img, hp, 2000)
		})
	}
}

func TestStressPoisonLoop4K(t *testing.T) {
	testenv.NeedRoot(t)
	losetup := testenv.NeedCommand(t, "losetup")
	for _, hp := range policies {
		t.Run(hp.String(), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "loop.img")
			poisonImage(t, img, volSize)
			out, err := exec.Command(losetup, "--find", "--show", "--sector-size", "4096", "--direct-io=on", img).CombinedOutput()
			testenv.Need(t, "loop", err == nil, fmt.Sprintf("losetup: %v: %s", err, out))
			loop := strings.TrimSpace(string(out))
			t.Cleanup(func() {
				// Detach even on failure; the volume is closed by then
				// (cleanups run last-in first-out).
				var out []byte
				var err error
				bound := func() bool { // still attached to our image?
					b, err := os.ReadFile("/sys/block/" + filepath.Base(loop) + "/loop/backing_file")
					return err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), img)
				}
				for i := 0; i < 50; i++ {
					if out, err = exec.Command(losetup, "-d", loop).CombinedOutput(); err == nil || !bound() {
						return
					}
					time.Sleep(100 * time.Millisecond) // EBUSY while the kernel drops its last reference
				}
				t.Errorf("losetup -d %s: %v: %s", loop, err, out)
			})
			if b, err := os.ReadFile("/sys/block/" + filepath.Base(loop) + "/queue/logical_block_size"); err == nil {
				if s := strings.TrimSpace(string(b)); s != "4096" {
					t.Fatalf("%s: logical block size %s, want 4096", loop, s)
				}
			}
			stressVolumePath(t, loop, hp, 1500)
		})
	}
}

func TestStressPoisonSim(t *testing.T) {
	type variant struct {
		hp        aiodio.HolePolicy
		blockSize int // 0: 4096 (or -check.blocksize)
		ops       int
	}
	var vs []variant
	for _, hp := range policies {
		vs = append(vs, variant{hp, *bsFlag, 1500})
	}
	if *bsFlag == 0 {
		// Blocks smaller than pages: partial-page blocks, more edges.
		for _, hp := range policies {
			vs = append(vs, variant{hp, 1024, 800})
		}
	}
	for _, v := range vs {
		hp := v.hp
		t.Run(variantName(hp, v.blockSize), func(t *testing.T) {
			seed := testSeed(t)
			d := newPoisonedSim(t, seed, 200*time.Microsecond, v.blockSize)
			tg, err := OpenVolumeDevice(d, aiodio.Options{HolePolicy: hp, CacheBytes: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			closeTarget := closeAtEnd(t, tg)
			// One ring shared by all workers: concurrent Submit and Wait (I2).
			runStress(t, tg, Config{Seed: seed, Ops: v.ops, MaxFileSize: 512 << 10, SharedQueue: true})
			closeTarget()
			if f, err := aiodio.FsckDevice(d); err != nil || len(f) != 0 {
				t.Fatalf("fsck after the run: %v %q", err, f)
			}
		})
	}
}

// TestStressCrashSim runs the stress on a poisoned sim device and cuts the
// power after the round following every Sync (half the unflushed writes
// kept, a quarter torn at sector granularity): after each remount, fsck is
// clean, every synced byte is intact, the round's writes are there or not,
// and nothing stale or poisoned is ever read (I11, I1).
func TestStressCrashSim(t *testing.T) {
	type variant struct {
		hp        aiodio.HolePolicy
		blockSize int
		weights   map[string]int
		ops       int
	}
	var vs []variant
	for _, hp := range policies {
		vs = append(vs, variant{hp, *bsFlag, nil, 1000})
	}
	if *bsFlag == 0 {
		// Truncate-heavy on 1 KiB blocks: many EOF blocks cut mid-way and
		// extended again across power cuts (found BUG-7).
		vs = append(vs, variant{aiodio.Unwritten, 1024, map[string]int{"truncate": 120, "remove": 10}, 700})
	}
	for _, v := range vs {
		hp := v.hp
		t.Run(variantName(hp, v.blockSize), func(t *testing.T) {
			seed := testSeed(t)
			d := newPoisonedSim(t, seed, 50*time.Microsecond, v.blockSize)
			tg, err := OpenVolumeSim(d, aiodio.Options{HolePolicy: hp, CacheBytes: 8 << 20},
				sim.CrashOptions{KeepUnflushed: 0.5, TearUnflushed: 0.25})
			if err != nil {
				t.Fatal(err)
			}
			closeTarget := closeAtEnd(t, tg)
			rep := runStress(t, tg, Config{Seed: seed, Ops: v.ops, MaxFileSize: 512 << 10, VerifyEvery: 3, CrashEvery: 1, Weights: v.weights})
			if rep.Crashes == 0 {
				t.Fatal("no power cut happened")
			}
			// Run ended by closing, fsck'ing (aiodio.FsckDevice) and
			// reopening the volume; findings fail runStress.
			closeTarget()
		})
	}
}

// TestStressEIOSim runs the stress on a poisoned sim device that fails
// device reads with EIO during the rounds (a few per round, at seeded
// points): direct reads, page fills and the read-modify-write of unaligned
// writes, truncates and punches hit them. Errors must come back to the op
// that hit them, every async op must complete exactly once, nothing may
// hang (error paths release their locks: I9), and every byte read, then and
// afterwards, must still verify (I1, I2, I12).
func TestStressEIOSim(t *testing.T) {
	for _, hp := range policies {
		t.Run(hp.String(), func(t *testing.T) {
			seed := testSeed(t)
			d := newPoisonedSim(t, seed, 50*time.Microsecond, *bsFlag)
			tg, err := OpenVolumeDevice(d, aiodio.Options{HolePolicy: hp, CacheBytes: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			closeTarget := closeAtEnd(t, tg)
			round := 0
			var inj []*sim.Injection
			faults := func(on bool) {
				if !on {
					for _, i := range inj {
						i.Remove()
					}
					inj = inj[:0]
					return
				}
				round++
				for k := 0; k < 3; k++ {
					inj = append(inj, d.Inject(sim.Fault{Ops: sim.OpRead, After: (round*7 + k*13) % 40, Count: 1}))
				}
			}
			rep := runStress(t, tg, Config{Seed: seed, Ops: 1500, MaxFileSize: 512 << 10, Faults: faults, ExpectErrors: syscall.EIO})
			t.Logf("%d ops failed by injected EIO", rep.Injected)
			if rep.Injected == 0 {
				t.Fatal("no injected error reached an op")
			}
			closeTarget()
		})
	}
}
