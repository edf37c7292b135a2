package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/fiorun"
	"github.com/aiodio/aiodio/internal/testenv"
)

// cli runs the CLI in-process and returns its exit status and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	t.Logf("aiodio %s → %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, o.String(), e.String())
	return code, o.String(), e.String()
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"nosuchcommand"},
		{"--nosuchflag", "demo"},
		{"demo", "extra"},
		{"demo", "--engine", "bogus"},
		{"demo", "--size", "12x"},
		{"demo", "--size", "4096"},
		{"demo", "--seconds", "0"},
		{"demo", "--qd", "0"},
		{"demo", "--files", "0"},
		{"demo", "--hole-policy", "bogus"},
		{"bench"},
		{"bench", "nosuchbench"},
		{"bench", "device", "--workload", "randread-4k-qd32,bogus", "--dir", dir},
		{"bench", "device", "--workload", "randread-4k-qd32", "--workload", "bogus", "--dir", dir},
		{"bench", "device", "--seconds", "0", "--dir", dir},
		{"bench", "device", "--size", "4097", "--dir", dir},
		{"bench", "device", "--engine", "bogus", "--dir", dir},
		{"bench", "device", "--rounds", "0", "--dir", dir},
	} {
		code, _, stderr := cli(t, args...)
		if code != exitUsage {
			t.Errorf("aiodio %q: exit %d, want %d (usage)", args, code, exitUsage)
		}
		if !strings.Contains(stderr, "aiodio:") {
			t.Errorf("aiodio %q: no error message on stderr: %q", args, stderr)
		}
	}
	// Nothing was left behind by the rejected bench runs.
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("rejected commands left files: %v", ents)
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := cli(t, "--help")
	if code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"demo", "bench", "--verbose"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, stdout, stderr := cli(t, "demo", "--seconds", "1", "--size", "8MiB", "--dir", dir)
	if code != exitOK {
		t.Fatalf("demo: exit %d", code)
	}
	for _, want := range []string{"engine", "poisoned", "direct read", "direct write", "append", "buffered read", "truncate",
		"final verify", "after remount", "stale", "mismatches", "0 stale bytes seen, 0 mismatches, fsck clean"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(stderr, "level=") {
		t.Errorf("demo logs without --verbose: %q", stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("demo left its image behind: %v", ents)
	}
}

func TestDemoFallbackPolicy(t *testing.T) {
	t.Parallel()
	code, stdout, _ := cli(t, "demo", "--seconds", "1", "--size", "16MiB", "--files", "2", "--hole-policy", "fallback", "--dir", t.TempDir())
	if code != exitOK || !strings.Contains(stdout, "hole policy fallback") || !strings.Contains(stdout, "0 mismatches") {
		t.Fatalf("demo --hole-policy fallback: exit %d", code)
	}
}

func TestDemoVerbose(t *testing.T) {
	t.Parallel()
	code, _, stderr := cli(t, "--verbose", "demo", "--seconds", "1", "--size", "8MiB", "--qd", "4", "--dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("demo: exit %d", code)
	}
	if !strings.Contains(stderr, "level=INFO") || !strings.Contains(stderr, "engine=") {
		t.Errorf("--verbose logged no engine line: %q", stderr)
	}
}

// --cpuprofile writes a CPU profile (gzip-compressed protobuf) of the
// command, and a profile file that cannot be created is an error before
// the command runs.
func TestCPUProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.prof")
	code, _, stderr := cli(t, "--cpuprofile", prof, "demo", "--seconds", "1", "--size", "8MiB", "--qd", "4", "--dir", dir)
	if code != exitOK {
		t.Fatalf("demo --cpuprofile: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is not gzip data (%d bytes)", len(b))
	}
	code, _, stderr = cli(t, "--cpuprofile", filepath.Join(dir, "missing", "cpu.prof"), "demo", "--seconds", "1", "--dir", dir)
	if code != exitFailure || !strings.Contains(stderr, "cpu profile") {
		t.Fatalf("unwritable profile: exit %d, stderr %q", code, stderr)
	}
}

// faultyDevice wraps a device: once armed (after the demo's setup), it
// corrupts one byte of reads, fills reads with the poison marker, or
// completes writes with EIO.
type faultyDevice struct {
	device.Device
	armed                                 *atomic.Bool
	corruptReads, poisonReads, failWrites bool
}

func (f *faultyDevice) Submit(reqs ...*device.Request) (int, error) {
	if !f.armed.Load() {
		return f.Device.Submit(reqs...)
	}
	for _, r := range reqs {
		orig := r.Done
		kind := r.Kind
		r.Done = func(r *device.Request) {
			r.Done = orig
			if kind == device.Read && f.corruptReads && r.Err == nil && len(r.Buf) > 100 {
				r.Buf[100] ^= 0x5a
			}
			if kind == device.Read && f.poisonReads && r.Err == nil {
				for i := 0; i+len(demoPoison) <= len(r.Buf); i += len(demoPoison) {
					copy(r.Buf[i:], demoPoison)
				}
			}
			if kind == device.Write && f.failWrites {
				r.N, r.Err = 0, syscall.EIO
			}
			orig(r)
		}
	}
	return f.Device.Submit(reqs...)
}

// withFaults makes openDevice return faulty devices, armed once the demo's
// volume is set up.
func withFaults(t *testing.T, fd faultyDevice) {
	old, oldArmed := openDevice, demoArmed
	t.Cleanup(func() { openDevice, demoArmed = old, oldArmed })
	armed := new(atomic.Bool)
	demoArmed = func() { armed.Store(true) }
	openDevice = func(path string, o device.OpenOptions) (device.Device, error) {
		d, err := old(path, o)
		if err != nil {
			return nil, err
		}
		f := fd
		f.Device, f.armed = d, armed
		return &f, nil
	}
}

func TestDemoDetectsMismatch(t *testing.T) {
	withFaults(t, faultyDevice{corruptReads: true})
	code, stdout, stderr := cli(t, "demo", "--seconds", "1", "--size", "8MiB", "--dir", t.TempDir())
	if code != exitFailure {
		t.Fatalf("demo over a corrupting device: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stderr, "verification FAILED") {
		t.Errorf("no verification failure reported: %q", stderr)
	}
	if strings.Contains(stdout, "OK:") {
		t.Errorf("demo claims OK over a corrupting device")
	}
}

func TestDemoDetectsStale(t *testing.T) {
	withFaults(t, faultyDevice{poisonReads: true})
	code, stdout, stderr := cli(t, "demo", "--seconds", "1", "--size", "8MiB", "--dir", t.TempDir())
	if code != exitFailure || !strings.Contains(stderr, "verification FAILED") {
		t.Fatalf("demo over a device returning poison: exit %d, want %d and a failure", code, exitFailure)
	}
	if strings.Contains(stderr, " 0 stale bytes seen") || strings.Contains(stdout, "OK:") {
		t.Errorf("stale bytes not counted: %q", stderr)
	}
}

func TestDemoDeviceError(t *testing.T) {
	withFaults(t, faultyDevice{failWrites: true})
	code, _, stderr := cli(t, "demo", "--seconds", "1", "--size", "8MiB", "--dir", t.TempDir())
	if code != exitFailure {
		t.Fatalf("demo over a failing device: exit %d", code)
	}
	if !strings.Contains(stderr, "input/output error") {
		t.Errorf("the device error is not reported: %q", stderr)
	}
}

func TestBenchDeviceTable(t *testing.T) {
	t.Parallel()
	code, stdout, _ := cli(t, "bench", "device", "--seconds", "1", "--size", "8MiB", "--dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"randread-4k-qd32", "randwrite-4k-qd32", "seqwrite-128k-qd8", "seqread-128k-qd8", "IOPS", "p99"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("bench output lacks %q", w)
		}
	}
	if strings.Contains(stdout, "fio") {
		t.Errorf("fio columns without --compare-fio")
	}
}

func decodeReport(t *testing.T, stdout string) map[string][]map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var rep map[string][]map[string]any
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not a JSON object: %v", err)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value")
	}
	if len(rep) != 1 || rep["workloads"] == nil {
		t.Fatalf("report has keys other than workloads: %v", rep)
	}
	return rep
}

func TestBenchDeviceJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, stdout, _ := cli(t, "bench", "device", "--seconds", "1", "--size", "8MiB", "--dir", dir, "--json",
		"--workload", "seqread-128k-qd8,randwrite-4k-qd32", "--rounds", "2")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	rep := decodeReport(t, stdout)
	ws := rep["workloads"]
	if len(ws) != 2 || ws[0]["name"] != "seqread-128k-qd8" || ws[1]["name"] != "randwrite-4k-qd32" {
		t.Fatalf("workloads = %v, want seqread-128k-qd8 then randwrite-4k-qd32", ws)
	}
	for _, w := range ws {
		for _, k := range []string{"iops", "mib_s", "p50_us", "p99_us"} {
			if v, ok := w[k].(float64); !ok || v <= 0 {
				t.Errorf("%s: %s = %v, want > 0", w["name"], k, w[k])
			}
		}
		for _, k := range []string{"fio_iops", "ratio"} {
			if _, ok := w[k]; ok {
				t.Errorf("%s: %s present without --compare-fio", w["name"], k)
			}
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("bench left its temporary image behind: %v", ents)
	}
}

func TestBenchCompareFioMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, _, stderr := cli(t, "bench", "device", "--seconds", "1", "--size", "8MiB", "--dir", t.TempDir(), "--compare-fio")
	if code != exitFailure || !strings.Contains(stderr, "fio not found") {
		t.Fatalf("--compare-fio without fio: exit %d, stderr %q; want 1 and a clear message", code, stderr)
	}
}

// TestBenchCompareFio runs one workload beside fio on an existing --file.
func TestBenchCompareFio(t *testing.T) {
	t.Parallel()
	testenv.NeedCommand(t, "fio")
	file := filepath.Join(t.TempDir(), "bench.img")
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, log: discardLogger()}
	if err := prepareImage(context.Background(), a, file, 8<<20); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := cli(t, "bench", "device", "--seconds", "1", "--file", file, "--json",
		"--compare-fio", "--workload", "randread-4k-qd32")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	ws := decodeReport(t, stdout)["workloads"]
	if len(ws) != 1 {
		t.Fatalf("workloads = %v", ws)
	}
	w := ws[0]
	iops, _ := w["iops"].(float64)
	fio, _ := w["fio_iops"].(float64)
	ratio, _ := w["ratio"].(float64)
	if fio <= 0 || ratio <= 0 {
		t.Fatalf("fio_iops %v, ratio %v: want > 0", w["fio_iops"], w["ratio"])
	}
	if d := ratio - iops/fio; d > 1e-9 || d < -1e-9 {
		t.Errorf("ratio %v != iops/fio_iops %v", ratio, iops/fio)
	}
	if st, err := os.Stat(file); err != nil || st.Size() != 8<<20 {
		t.Errorf("--file was changed or removed: %v %v", st, err)
	}
}

func TestPrintBenchWithFio(t *testing.T) {
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out, log: discardLogger()}
	row := benchRow{Name: "randread-4k-qd32", IOPS: 90000, MiBps: 351.6, P50us: 300, P99us: 900}
	addFio(&row, fiorun.Result{IOPS: 100000, MiBps: 390.6, P50: 280 * time.Microsecond, P99: 800 * time.Microsecond})
	if err := printBench(a, benchReport{Workloads: []benchRow{row}}, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fio IOPS", "ratio", "90.0k", "100.0k", "0.90", "300.0µs", "800.0µs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := printBench(a, benchReport{Workloads: []benchRow{row}}, true); err != nil {
		t.Fatal(err)
	}
	want := `{"workloads":[{"name":"randread-4k-qd32","iops":90000,"mib_s":351.6,"p50_us":300,"p99_us":900,` +
		`"fio_iops":100000,"fio_mib_s":390.6,"fio_p50_us":280,"fio_p99_us":800,"ratio":0.9}]}` + "\n"
	if out.String() != want {
		t.Errorf("JSON =\n%s want\n%s", out.String(), want)
	}
}

func TestMedianRound(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rows := []benchRow{
		{Name: "a", IOPS: 5, Ratio: f(0.5)},
		{Name: "b", IOPS: 1, Ratio: f(1.5)},
		{Name: "c", IOPS: 9, Ratio: f(0.9)},
	}
	if got := medianRound(slices.Clone(rows)); got.Name != "c" {
		t.Errorf("median by ratio = %s, want c", got.Name)
	}
	for i := range rows {
		rows[i].Ratio = nil
	}
	if got := medianRound(slices.Clone(rows)); got.Name != "a" {
		t.Errorf("median by IOPS = %s, want a", got.Name)
	}
	if got := medianRound(rows[:2]); got.Name != "b" { // lower middle of {1, 5}
		t.Errorf("median of two = %s, want b", got.Name)
	}
}

// blackHole accepts requests and, once armed, never completes them.
type blackHole struct {
	device.Device
	armed *atomic.Bool
}

func (b blackHole) Submit(reqs ...*device.Request) (int, error) {
	if !b.armed.Load() {
		return b.Device.Submit(reqs...)
	}
	return len(reqs), nil
}

func TestDemoHungDevice(t *testing.T) {
	old, oldStall, oldArmed := openDevice, demoStall, demoArmed
	t.Cleanup(func() { openDevice, demoStall, demoArmed = old, oldStall, oldArmed })
	demoStall = 300 * time.Millisecond
	armed := new(atomic.Bool)
	demoArmed = func() { armed.Store(true) }
	openDevice = func(path string, o device.OpenOptions) (device.Device, error) {
		d, err := old(path, o)
		if err != nil {
			return nil, err
		}
		return blackHole{d, armed}, nil
	}
	code, _, stderr := cli(t, "demo", "--seconds", "1", "--size", "8MiB", "--dir", t.TempDir())
	if code != exitFailure || !strings.Contains(stderr, "stopped completing") {
		t.Fatalf("demo over a hung device: exit %d, stderr %q; want 1 and a clear message", code, stderr)
	}
}
