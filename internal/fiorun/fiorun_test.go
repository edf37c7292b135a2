package fiorun

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aiodio/aiodio/internal/testenv"
)

func TestParseRecorded(t *testing.T) {
	for _, tc := range []struct {
		file        string
		iops, mibps float64
		p50, p99    time.Duration
	}{
		// Figures read off the recorded reports by hand (lat_ns percentiles).
		{"randread-4k-qd32.json", 423959.040959, 1736536231.0 / (1 << 20), 64768, 146432},
		{"seqwrite-128k-qd8.json", 17016.983017, 2230449998.0 / (1 << 20), 423936, 1236992},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// fio sometimes prints warnings before the JSON object.
			b = append([]byte("fio: some warning\n"), b...)
			r, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.IOPS != tc.iops || r.MiBps != tc.mibps || r.P50 != tc.p50 || r.P99 != tc.p99 {
				t.Errorf("Parse = %+v, want IOPS %v MiB/s %v p50 %v p99 %v", r, tc.iops, tc.mibps, tc.p50, tc.p99)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	for _, in := range []string{
		"",
		"fio: engine io_uring not loadable",
		`{"jobs":[]}`,
		`{"jobs":[{"error":5,"read":{"iops":1,"total_ios":1}}]}`,
		`{"jobs":[{"read":{"iops":1,"total_ios":1}}]}`, // no percentiles
		`{"jobs":[{"read":{},"write":{}}]}`,            // no I/O
		`{"jobs":[`,
	} {
		if r, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, r)
		}
	}
}

func TestArgs(t *testing.T) {
	a := Args(Job{File: "/x.img", RW: "randread", BS: 4096, IODepth: 32, Seconds: 5, Size: 1 << 20, Direct: true, EndFsync: true})
	for _, want := range []string{"--filename=/x.img", "--rw=randread", "--bs=4096", "--iodepth=32",
		"--ioengine=io_uring", "--direct=1", "--runtime=5", "--time_based", "--size=1048576",
		"--end_fsync=1", "--output-format=json", "--lat_percentiles=1"} {
		if !slices.Contains(a, want) {
			t.Errorf("Args lacks %q: %v", want, a)
		}
	}
	a = Args(Job{File: "/x.img", RW: "read", BS: 4096, IODepth: 1, Seconds: 1, Engine: "psync"})
	for _, s := range a {
		if strings.HasPrefix(s, "--size") || strings.HasPrefix(s, "--end_fsync") {
			t.Errorf("Args has %q for a job without it", s)
		}
	}
	if !slices.Contains(a, "--ioengine=psync") || !slices.Contains(a, "--direct=0") {
		t.Errorf("Args ignores Engine/Direct: %v", a)
	}
}

func TestRunMissingFio(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Run(context.Background(), Job{File: "/nonexistent", RW: "read", BS: 4096, IODepth: 1, Seconds: 1})
	if !errors.Is(err, ErrNoFio) {
		t.Fatalf("Run without fio: err = %v, want ErrNoFio", err)
	}
}

func TestRunBadJob(t *testing.T) {
	for _, j := range []Job{
		{RW: "read", BS: 4096, IODepth: 1, Seconds: 1},
		{File: "f", BS: 4096, IODepth: 1, Seconds: 1},
		{File: "f", RW: "read", IODepth: 1, Seconds: 1},
		{File: "f", RW: "read", BS: 4096, Seconds: 1},
		{File: "f", RW: "read", BS: 4096, IODepth: 1},
		{File: "f", RW: "read", BS: 4096, IODepth: 1, Seconds: 1, Size: -1},
	} {
		if _, err := Run(context.Background(), j); err == nil {
			t.Errorf("Run(%+v) succeeded", j)
		}
	}
}

// TestRunFio runs fio for one second on a small written file.
func TestRunFio(t *testing.T) {
	testenv.NeedCommand(t, "fio")
	f := filepath.Join(t.TempDir(), "fio.img")
	if err := os.WriteFile(f, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Job{File: f, RW: "randread", BS: 4096, IODepth: 4, Seconds: 1, Size: 4 << 20, Direct: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.IOPS <= 0 || r.MiBps <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Errorf("implausible fio result %+v", r)
	}
	// A fio failure (a directory is no file) is an error that says so.
	if _, err := Run(context.Background(), Job{File: t.TempDir(), RW: "randread", BS: 4096, IODepth: 1, Seconds: 1, Direct: true}); err == nil {
		t.Error("fio on a directory succeeded")
	}
}

func TestArgsOnce(t *testing.T) {
	a := Args(Job{File: "/x.img", RW: "write", BS: 131072, IODepth: 1, Size: 1 << 30, Engine: "psync", EndFsync: true, Once: true})
	for _, s := range a {
		if strings.HasPrefix(s, "--runtime") || s == "--time_based" {
			t.Errorf("a job run once has %q: %v", s, a)
		}
	}
	for _, want := range []string{"--size=1073741824", "--end_fsync=1", "--ioengine=psync", "--direct=0"} {
		if !slices.Contains(a, want) {
			t.Errorf("Args lacks %q: %v", want, a)
		}
	}
	if _, err := Run(context.Background(), Job{File: "f", RW: "write", BS: 4096, IODepth: 1, Once: true}); err == nil {
		t.Error("a job run once without a size was accepted")
	}
}

// TestRunFioOnce writes a small file once through the page cache with a
// final fsync (the buffered-write comparison of `aiodio bench file`).
func TestRunFioOnce(t *testing.T) {
	testenv.NeedCommand(t, "fio")
	f := filepath.Join(t.TempDir(), "fio.img")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, 4<<20); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Job{File: f, RW: "write", BS: 128 << 10, IODepth: 1, Size: 4 << 20,
		Engine: "psync", EndFsync: true, Once: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.IOPS <= 0 || r.MiBps <= 0 {
		t.Errorf("implausible fio result %+v", r)
	}
}
