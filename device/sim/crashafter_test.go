package sim_test

import (
	"bytes"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// batchWorkload writes batches of 4 one-sector writes (batch b fills its
// sectors with byte b+1), flushing after each batch, all driven from Done
// callbacks so the whole run is a function of the seed. It returns the
// number of batches whose flush succeeded, once every request completed.
func batchWorkload(t *testing.T, d *sim.Device, batches int) (flushed int) {
	t.Helper()
	var wg sync.WaitGroup
	var startBatch func(b int)
	startBatch = func(b int) {
		if b == batches {
			return
		}
		left := 4
		var reqs []*device.Request
		for i := range 4 {
			reqs = append(reqs, &device.Request{Kind: device.Write, Off: int64(b*4+i) * 512, Buf: filled(512, byte(b+1)),
				Done: func(r *device.Request) {
					defer wg.Done()
					if left--; left > 0 {
						return
					}
					f := &device.Request{Kind: device.Flush, Done: func(r *device.Request) {
						defer wg.Done()
						if r.Err == nil {
							flushed = b + 1
							startBatch(b + 1)
						}
					}}
					wg.Add(1)
					if _, err := d.Submit(f); err != nil {
						wg.Done()
					}
				}})
		}
		wg.Add(len(reqs))
		if n, _ := d.Submit(reqs...); n < len(reqs) {
			wg.Add(n - len(reqs))
		}
	}
	startBatch(0)
	wg.Wait()
	return flushed
}

// TestCrashAfter power-cuts a workload after every possible completion:
// everything a successful flush covered survives, nothing unflushed does
// (KeepUnflushed 0), and the same seed gives the same image.
func TestCrashAfter(t *testing.T) {
	const batches = 4
	total := batches * 5
	for k := 0; k <= total; k++ {
		var imgs [][]byte
		for range 2 {
			d := sim.New(sim.Options{Size: 64 << 10, Seed: 42})
			ch := d.CrashAfter(k, sim.CrashOptions{Seed: 1})
			flushed := batchWorkload(t, d, batches)
			d.Close()
			var nd *sim.Device
			select {
			case nd = <-ch:
			default:
				if k < total {
					t.Fatalf("k=%d: crash did not fire", k)
				}
				continue
			}
			img := nd.Image()
			nd.Close()
			for b := range batches {
				want := byte(0)
				if b < flushed {
					want = byte(b + 1)
				}
				if got := img[b*2048 : (b+1)*2048]; !bytes.Equal(got, bytes.Repeat([]byte{want}, 2048)) {
					t.Fatalf("k=%d: batch %d (flushed %d) reads %v..., want %d", k, b, flushed, got[:4], want)
				}
			}
			if k < total && flushed == batches {
				t.Fatalf("k=%d: crash did not interrupt the workload", k)
			}
			imgs = append(imgs, img)
		}
		if len(imgs) == 2 && !bytes.Equal(imgs[0], imgs[1]) {
			t.Fatalf("k=%d: same seed, different crash images", k)
		}
	}
}

func TestCrashTwiceAndClosed(t *testing.T) {
	d := sim.New(sim.Options{Size: 64 << 10})
	mustDo(t, d, device.Write, 0, filled(512, 7))
	mustDo(t, d, device.Flush, 0, nil)
	a := d.Crash(sim.CrashOptions{})
	b := d.Crash(sim.CrashOptions{KeepUnflushed: 1})
	if _, err := do(t, d, device.Flush, 0, nil); !errors.Is(err, syscall.EIO) || !errors.Is(err, sim.ErrCrashed) {
		t.Fatalf("flush on crashed device: %v", err)
	}
	d.Close()
	c := d.Crash(sim.CrashOptions{})
	for _, x := range []*sim.Device{a, b, c} {
		if x.ReadRaw(0, 1)[0] != 7 {
			t.Fatal("crash lost flushed data")
		}
		x.Close()
	}
	if ch := d.CrashAfter(0, sim.CrashOptions{}); len(ch) != 0 {
		t.Fatal("CrashAfter on a closed device fired")
	}
}
