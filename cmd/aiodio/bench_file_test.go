package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device/devbench"
	"github.com/aiodio/aiodio/internal/testenv"
)

func TestBenchFileJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, stdout, _ := cli(t, "bench", "file", "--seconds", "1", "--size", "4MiB", "--buffered-size", "2MiB", "--dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	ws := decodeReport(t, stdout)["workloads"]
	want := []string{"randread-4k-qd32", "randwrite-4k-qd32", "seqwrite-128k-qd8", "seqread-128k-qd8", wlUnaligned, "buffered-seqwrite-2m"}
	if len(ws) != len(want) {
		t.Fatalf("workloads = %v, want %v", ws, want)
	}
	for i, w := range ws {
		if w["name"] != want[i] {
			t.Errorf("workload %d = %v, want %s", i, w["name"], want[i])
		}
		for _, k := range []string{"iops", "mib_s", "p50_us", "p99_us"} {
			if v, ok := w[k].(float64); !ok || v <= 0 {
				t.Errorf("%s: %s = %v, want > 0", w["name"], k, w[k])
			}
		}
		if _, ok := w["fio_iops"]; ok {
			t.Errorf("%s: fio figures without --compare-fio", w["name"])
		}
	}
	u := ws[4]
	base, _ := u["baseline_iops"].(float64)
	ratio, _ := u["ratio"].(float64)
	iops, _ := u["iops"].(float64)
	if base <= 0 || ratio <= 0 || ratio-iops/base > 1e-9 || iops/base-ratio > 1e-9 {
		t.Errorf("unaligned: baseline_iops %v ratio %v iops %v", u["baseline_iops"], u["ratio"], u["iops"])
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("bench file left files behind: %v", ents)
	}
}

func TestBenchFileTableCompareFio(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "fio")
	dir := t.TempDir()
	code, stdout, _ := cli(t, "bench", "file", "--seconds", "1", "--size", "4MiB", "--buffered-size", "2MiB", "--dir", dir,
		"--compare-fio", "--workload", "randwrite-4k-qd32,"+wlBuffered)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"randwrite-4k-qd32", "fio IOPS", "buffered-seqwrite-2m", "fio MiB/s", "end_fsync=1", "ratio"} {
		if !containsStr(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("bench file left files behind: %v", ents)
	}
}

func TestBenchFileUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"bench", "file", "--workload", "bogus", "--dir", dir},
		{"bench", "file", "--size", "1000", "--dir", dir},
		{"bench", "file", "--seconds", "0", "--dir", dir},
		{"bench", "file", "--rounds", "0", "--dir", dir},
		{"bench", "file", "--writers", "0", "--dir", dir},
		{"bench", "file", "--unaligned-bs", "4096", "--dir", dir},
		{"bench", "file", "--buffered-size", "1000", "--dir", dir},
		{"bench", "file", "--engine", "bogus", "--dir", dir},
		{"bench", "file", "--ring", "bogus", "--dir", dir},
		{"bench", "file", "extra"},
	} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("aiodio %q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("rejected commands left files: %v", ents)
	}
}

// TestRunRingAllocs: the benchmark's own loops (Wait ring and function
// ring) allocate nothing per op (asserted without -race; the engine's
// steady state is tested by the root package).
func TestRunRingAllocs(t *testing.T) {
	img := filepath.Join(t.TempDir(), "v.img")
	if err := aiodio.Mkfs(img, aiodio.MkfsOptions{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	f, err := v.OpenFile("f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const span = 4 << 20
	buf := aiodio.AlignedBuffer(span)
	if _, err := f.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	// A cancellable context, as the CLI has (signal.NotifyContext).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loops := map[string]func(context.Context, *aiodio.Volume, *aiodio.File, devbench.Workload, int64, time.Duration, *atomic.Int64) (ringResult, error){
		"wait": runRing, "func": runRingFunc,
	}
	for _, key := range []string{"wait/randread-4k-qd32", "wait/randwrite-4k-qd32", "func/randread-4k-qd32", "func/randwrite-4k-qd32"} {
		mode, name, _ := strings.Cut(key, "/")
		run := loops[mode]
		w, _ := devbench.Lookup(name)
		name = key
		var done atomic.Int64
		// Warm up (pools, the ring's goroutines), then measure.
		if _, err := run(ctx, v, f, w, span, 100*time.Millisecond, &done); err != nil {
			t.Fatal(err)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		res, err := run(ctx, v, f, w, span, 300*time.Millisecond, &done)
		runtime.ReadMemStats(&m1)
		if err != nil {
			t.Fatal(err)
		}
		if res.ops < 100 {
			t.Fatalf("%s: only %d ops", name, res.ops)
		}
		per := float64(m1.Mallocs-m0.Mallocs) / float64(res.ops)
		t.Logf("%s: %d ops, %.3f allocations per op (whole process)", name, res.ops, per)
		// One allocation per op on the benchmark's side would show as >= 1;
		// the background goroutines of the volume (flusher, commits)
		// allocate a little whatever the op count, so the bound is loose.
		if !raceEnabled && per >= 0.5 {
			t.Errorf("%s: %.3f allocations per op, want 0 (a few per run are setup and background work)", name, per)
		}
	}
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }
