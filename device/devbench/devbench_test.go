package devbench

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
)

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	p50, p99 := h.quantile(0.5), h.quantile(0.99)
	if p50 < 480*time.Microsecond || p50 > 540*time.Microsecond {
		t.Errorf("p50 = %v, want about 500µs", p50)
	}
	if p99 < 960*time.Microsecond || p99 > 1060*time.Microsecond {
		t.Errorf("p99 = %v, want about 990µs", p99)
	}
	for ns := int64(0); ns < 1<<20; ns = ns*3/2 + 1 {
		if b := bucketOf(ns); bucketUpper(b) <= ns {
			t.Fatalf("ns %d in bucket %d with upper bound %d", ns, b, bucketUpper(b))
		}
	}
}

func TestRunWorkloads(t *testing.T) {
	dev := device.NewMemory(64<<20, 512)
	defer dev.Close()
	for _, w := range Workloads {
		w.Duration = 100 * time.Millisecond
		calls := 0
		res, err := Run(context.Background(), dev, w, func(int64) { calls++ })
		if err != nil {
			t.Fatalf("%s: %v", w.Name, err)
		}
		if res.Ops <= 0 || res.Bytes != res.Ops*int64(w.BlockSize) || res.IOPS <= 0 || res.MiBps <= 0 || res.P50 <= 0 || res.P99 < res.P50 {
			t.Fatalf("%s: implausible result %+v", w.Name, res)
		}
		if calls == 0 {
			t.Fatalf("%s: progress never called", w.Name)
		}
	}
	if _, ok := Lookup("randread-4k-qd32"); !ok {
		t.Fatal("Lookup failed")
	}
}

func TestRunBadInput(t *testing.T) {
	dev := device.NewMemory(1<<20, 4096)
	defer dev.Close()
	for _, w := range []Workload{
		{Name: "odd", BlockSize: 512, QueueDepth: 1},
		{Name: "huge", BlockSize: 4 << 20, QueueDepth: 1},
		{Name: "zero", BlockSize: 0, QueueDepth: 1},
	} {
		if _, err := Run(context.Background(), dev, w, nil); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: %v, want EINVAL", w.Name, err)
		}
	}
}

func TestRunCancel(t *testing.T) {
	dev := device.NewMemory(1<<20, 512)
	defer dev.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w, _ := Lookup("randread-4k-qd32")
	w.Duration = time.Hour
	if _, err := Run(ctx, dev, w, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled run: %v", err)
	}
}

func TestRunErrorStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	dev, err := device.Open(path, device.OpenOptions{Create: true, Size: 1 << 20, ReadOnly: false})
	if err != nil {
		t.Fatal(err)
	}
	dev.Close()
	ro, err := device.Open(path, device.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	w, _ := Lookup("randwrite-4k-qd32")
	w.Duration = time.Hour
	if _, err := Run(context.Background(), ro, w, nil); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("writes to a read-only device: %v, want EBADF", err)
	}
}

func TestRunNoAllocsPerOp(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	dev := device.NewMemory(16<<20, 512)
	defer dev.Close()
	w, _ := Lookup("randread-4k-qd32")
	w.Duration = 300 * time.Millisecond
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := Run(context.Background(), dev, w, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocs := after.Mallocs - before.Mallocs
	// Setup allocates a fixed amount (slots, buffers, ticker); per op nothing.
	if res.Ops < 1000 {
		t.Skipf("only %d ops; too few to measure", res.Ops)
	}
	if perOp := float64(allocs) / float64(res.Ops); perOp > 0.01 {
		t.Fatalf("%d allocations for %d ops (%.3f per op)", allocs, res.Ops, perOp)
	}
}
