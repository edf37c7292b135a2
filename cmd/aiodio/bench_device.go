package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/devbench"
	"github.com/aiodio/aiodio/internal/fiorun"
	"github.com/spf13/cobra"
)

// `aiodio bench device`: the device engine alone (no filesystem), beside fio
// on the same file.

func init() { addBenchCommand(newBenchDeviceCmd) }

type benchOptions struct {
	workloads  []string
	file       string
	dir        string
	size       sizeValue
	engine     string
	seconds    int
	rounds     int
	compareFio bool
	json       bool
}

func newBenchDeviceCmd(a *app) *cobra.Command {
	o := benchOptions{size: 1 << 30, engine: "auto", seconds: 5, rounds: 1}
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Benchmark the device engine (optionally beside fio)",
		Long: "bench device runs each workload through aiodio's device engine on --file (default:\n" +
			"a temporary image of --size, written in full so reads hit real blocks) and, with\n" +
			"--compare-fio, the same workload through fio right after it. With --rounds N\n" +
			"each workload runs N times, alternating with fio, and the median round is shown.\n\n" +
			"Workloads: " + strings.Join(workloadNames(), ", ") + ".\n" +
			"An existing --file is used as it is (a sparse file reads holes and measures little).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchDevice(cmd.Context(), a, o) },
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.workloads, "workload", nil, "workloads to run (repeatable or comma list; default all)")
	f.StringVar(&o.file, "file", "", "image file or block device to run on (default: a temporary image)")
	f.StringVar(&o.dir, "dir", "", "directory of the temporary image (default $TMPDIR or /tmp)")
	f.Var(&o.size, "size", "size of the temporary image, or of a new --file")
	f.StringVar(&o.engine, "engine", o.engine, "device engine: auto, uring or threads")
	f.IntVar(&o.seconds, "seconds", o.seconds, "run time of each workload")
	f.IntVar(&o.rounds, "rounds", o.rounds, "run each workload this many times (alternating with fio) and report the median round")
	f.BoolVar(&o.compareFio, "compare-fio", false, "run fio (io_uring, direct=1) after each workload and print the ratio")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of a table")
	return cmd
}

func workloadNames() []string {
	var n []string
	for _, w := range devbench.Workloads {
		n = append(n, w.Name)
	}
	return n
}

// selectWorkloads returns the named workloads in the order given (all, in
// devbench order, when names is empty).
func selectWorkloads(names []string) ([]devbench.Workload, error) {
	if len(names) == 0 {
		return slices.Clone(devbench.Workloads), nil
	}
	var ws []devbench.Workload
	for _, n := range names {
		n = strings.TrimSpace(n)
		w, ok := devbench.Lookup(n)
		if !ok {
			return nil, usagef("unknown workload %q (want one of %s)", n, strings.Join(workloadNames(), ", "))
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// fioRW is fio's rw= for a workload.
func fioRW(random, write bool) string {
	switch {
	case random && write:
		return "randwrite"
	case random:
		return "randread"
	case write:
		return "write"
	}
	return "read"
}

// benchRow is one line of the report; its JSON form is the --json contract.
type benchRow struct {
	Name     string   `json:"name"`
	IOPS     float64  `json:"iops"`
	MiBps    float64  `json:"mib_s"`
	P50us    float64  `json:"p50_us"`
	P99us    float64  `json:"p99_us"`
	FioIOPS  *float64 `json:"fio_iops,omitempty"`
	FioMiBps *float64 `json:"fio_mib_s,omitempty"`
	FioP50us *float64 `json:"fio_p50_us,omitempty"`
	FioP99us *float64 `json:"fio_p99_us,omitempty"`
	// Baseline figures (bench file's unaligned workload: the same writes
	// serialized per file); ratio is then iops / baseline_iops.
	BaseIOPS  *float64 `json:"baseline_iops,omitempty"`
	BaseMiBps *float64 `json:"baseline_mib_s,omitempty"`
	BaseP50us *float64 `json:"baseline_p50_us,omitempty"`
	BaseP99us *float64 `json:"baseline_p99_us,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
}

type benchReport struct {
	Workloads []benchRow `json:"workloads"`
}

// benchTarget is the file a benchmark runs on.
type benchTarget struct {
	path    string
	span    int64
	cleanup func()
}

// prepareTarget returns the file to benchmark: --file as it is, a new --file
// of --size, or a temporary image of --size.
func prepareTarget(ctx context.Context, a *app, file, dir string, size int64) (benchTarget, error) {
	t := benchTarget{path: file, cleanup: func() {}}
	if file != "" {
		st, err := os.Stat(file)
		switch {
		case err == nil && st.IsDir():
			return t, usagef("--file %s is a directory", file)
		case err == nil && st.Mode().IsRegular() && st.Size() > 0:
			t.span = st.Size()
			a.log.Info("bench: using existing file", "path", file, "size", st.Size())
			return t, nil
		case err == nil && st.Mode()&os.ModeDevice != 0:
			return t, nil // span from the device
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return t, fmt.Errorf("--file: %w", err)
		}
		// Missing or empty: create it, and keep it.
		if err := prepareImage(ctx, a, file, size); err != nil {
			return t, err
		}
		t.span = size
		return t, nil
	}
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "aiodio-bench-*.img")
	if err != nil {
		return t, fmt.Errorf("creating the benchmark image: %w", err)
	}
	f.Close()
	t.path = f.Name()
	t.cleanup = func() { os.Remove(t.path) }
	if err := prepareImage(ctx, a, t.path, size); err != nil {
		t.cleanup()
		return t, err
	}
	t.span = size
	return t, nil
}

func runBenchDevice(ctx context.Context, a *app, o benchOptions) error {
	if err := checkBenchFlags(o.engine, o.seconds, o.rounds); err != nil {
		return err
	}
	ws, err := selectWorkloads(o.workloads)
	if err != nil {
		return err
	}
	maxBS, maxQD := 0, 1
	for _, w := range ws {
		maxBS, maxQD = max(maxBS, w.BlockSize), max(maxQD, w.QueueDepth)
	}
	if int64(o.size) < int64(maxBS)*int64(maxQD)*2 || int64(o.size)%4096 != 0 {
		return usagef("--size %s must be a multiple of 4096 and at least %s", formatSize(int64(o.size)),
			formatSize(int64(maxBS)*int64(maxQD)*2))
	}
	if o.compareFio {
		if _, err := fiorunLookPath(); err != nil {
			return err
		}
	}
	tgt, err := prepareTarget(ctx, a, o.file, o.dir, int64(o.size))
	if err != nil {
		return err
	}
	defer tgt.cleanup()

	dev, err := openDevice(tgt.path, device.OpenOptions{Engine: o.engine, Logger: a.log, QueueDepth: maxQD})
	if err != nil {
		return fmt.Errorf("opening %s: %w", tgt.path, err)
	}
	defer dev.Close()
	info := dev.Info()
	span := info.Size
	if tgt.span > 0 && tgt.span < span {
		span = tgt.span
	}
	a.log.Info("bench device", "path", tgt.path, "engine", info.Engine, "cached", info.Cached, "span", span)
	if !o.json {
		mode := "direct I/O"
		if info.Cached {
			mode = "CACHED: the filesystem refused O_DIRECT"
		}
		fmt.Fprintf(a.stdout, "aiodio bench device: %s (%s), engine %s (%s), %ds per workload\n",
			tgt.path, formatSize(span), info.Engine, mode, o.seconds)
	}

	var rep benchReport
	for _, w := range ws {
		w.Duration = time.Duration(o.seconds) * time.Second
		w.Span = span
		row, err := benchWorkload(ctx, a, dev, tgt.path, w, o)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.Name, err)
		}
		rep.Workloads = append(rep.Workloads, row)
	}
	return printBench(a, rep, o.json)
}

// benchWorkload runs w o.rounds times (aiodio, then fio right after it when
// comparing) and returns the median round: by ratio when comparing, else by
// IOPS. All figures of the row come from that one round, so ratio is
// always iops / fio_iops; alternating rounds cancel most of a noisy
// machine's drift.
func benchWorkload(ctx context.Context, a *app, dev device.Device, path string, w devbench.Workload, o benchOptions) (benchRow, error) {
	var rounds []benchRow
	for i := range o.rounds {
		res, err := runDevbench(ctx, a, dev, w)
		if err != nil {
			return benchRow{}, err
		}
		row := benchRow{Name: w.Name, IOPS: res.IOPS, MiBps: res.MiBps, P50us: usOf(res.P50), P99us: usOf(res.P99)}
		if o.compareFio {
			fr, err := fiorun.Run(ctx, fiorun.Job{
				File: path, RW: fioRW(w.Random, w.Write), BS: w.BlockSize, IODepth: w.QueueDepth,
				Seconds: o.seconds, Size: w.Span, Engine: "io_uring", Direct: true,
			})
			if err != nil {
				return benchRow{}, err
			}
			addFio(&row, fr)
			a.log.Info("bench round", "workload", w.Name, "round", i+1, "iops", row.IOPS, "fio_iops", fr.IOPS, "ratio", *row.Ratio)
		} else {
			a.log.Info("bench round", "workload", w.Name, "round", i+1, "iops", row.IOPS)
		}
		rounds = append(rounds, row)
	}
	return medianRound(rounds), nil
}

// medianRound returns the round with the median ratio (median IOPS without
// fio figures); of an even count, the lower middle one.
func medianRound(rounds []benchRow) benchRow {
	key := func(r benchRow) float64 {
		if r.Ratio != nil {
			return *r.Ratio
		}
		return r.IOPS
	}
	slices.SortStableFunc(rounds, func(x, y benchRow) int { return cmp.Compare(key(x), key(y)) })
	return rounds[(len(rounds)-1)/2]
}

func fiorunLookPath() (string, error) {
	p, err := exec.LookPath("fio")
	if err != nil {
		return "", fmt.Errorf("--compare-fio: %w", fiorun.ErrNoFio)
	}
	return p, nil
}

func addFio(row *benchRow, fr fiorun.Result) {
	iops, mibs, p50, p99 := fr.IOPS, fr.MiBps, usOf(fr.P50), usOf(fr.P99)
	row.FioIOPS, row.FioMiBps, row.FioP50us, row.FioP99us = &iops, &mibs, &p50, &p99
	ratio := 0.0
	if fr.IOPS > 0 {
		ratio = row.IOPS / fr.IOPS
	}
	row.Ratio = &ratio
}

// runDevbench runs one workload with a progress display.
func runDevbench(ctx context.Context, a *app, dev device.Device, w devbench.Workload) (devbench.Result, error) {
	var done atomic.Int64
	p := newTimedProgress(a, w.Name, w.Duration)
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() { // owned by runDevbench: stopped before it returns
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.update(done.Load())
			}
		}
	}()
	res, err := devbench.Run(ctx, dev, w, func(n int64) { done.Store(n) })
	close(stop)
	<-finished
	p.finish(res.Ops)
	return res, err
}

func printBench(a *app, rep benchReport, asJSON bool) error {
	if asJSON {
		if rep.Workloads == nil {
			rep.Workloads = []benchRow{}
		}
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	fio := len(rep.Workloads) > 0 && rep.Workloads[0].FioIOPS != nil
	head := []string{"workload", "IOPS", "MiB/s", "p50", "p99"}
	if fio {
		head = append(head, "fio IOPS", "fio MiB/s", "fio p50", "fio p99", "ratio")
	}
	t := newTable(head...)
	us := func(v float64) string { return fmtLat(time.Duration(v * float64(time.Microsecond))) }
	for _, r := range rep.Workloads {
		cells := []string{r.Name, fmtCount(r.IOPS), fmt.Sprintf("%.1f", r.MiBps), us(r.P50us), us(r.P99us)}
		if fio {
			cells = append(cells, fmtCount(*r.FioIOPS), fmt.Sprintf("%.1f", *r.FioMiBps), us(*r.FioP50us),
				us(*r.FioP99us), fmt.Sprintf("%.2f", *r.Ratio))
		}
		t.row(cells...)
	}
	t.write(a.stdout)
	if fio {
		fmt.Fprintln(a.stdout, "ratio = aiodio IOPS / fio IOPS (fio: ioengine=io_uring, direct=1, same file, bs, iodepth, run time)")
	}
	return nil
}
