package fiorun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrNoFio is returned (wrapped) by Run when the fio binary is not on PATH.
var ErrNoFio = errors.New("fio not found on PATH (install it: apt-get install fio)")

// Job describes one fio job: time based (Seconds) unless Once.
type Job struct {
	// File is the target file or block device; it must exist (fio lays out
	// missing or short files itself, which is not what a comparison wants).
	File string
	// RW is fio's rw= value: read, write, randread, randwrite, rw, randrw.
	RW string
	// BS is the block size in bytes.
	BS int
	// IODepth is the queue depth.
	IODepth int
	// Seconds is the run time; the job is time_based.
	Seconds int
	// Size limits the span of the file that is used (0: the whole file).
	Size int64
	// Engine is fio's ioengine (default "io_uring").
	Engine string
	// Direct opens the file O_DIRECT (direct=1).
	Direct bool
	// EndFsync makes fio fsync the file at the end of the job (end_fsync=1).
	EndFsync bool
	// Once runs the job over Size bytes once instead of for Seconds
	// (no time_based): a fixed amount of I/O, e.g. "write 1 GiB, then
	// fsync". Size must then be positive; Seconds is ignored.
	Once bool
}

// Result holds the figures of one job; for mixed jobs read and write are summed.
type Result struct {
	IOPS  float64
	MiBps float64
	P50   time.Duration
	P99   time.Duration
}

// Args returns the fio command line (without "fio") for j.
func Args(j Job) []string {
	engine := j.Engine
	if engine == "" {
		engine = "io_uring"
	}
	direct := 0
	if j.Direct {
		direct = 1
	}
	args := []string{
		"--name=aiodio",
		"--filename=" + j.File,
		"--rw=" + j.RW,
		"--bs=" + strconv.Itoa(j.BS),
		"--iodepth=" + strconv.Itoa(j.IODepth),
		"--ioengine=" + engine,
		"--direct=" + strconv.Itoa(direct),
		"--numjobs=1",
		"--lat_percentiles=1",
		"--output-format=json",
	}
	if !j.Once {
		args = append(args, "--runtime="+strconv.Itoa(j.Seconds), "--time_based")
	}
	if j.Size > 0 {
		args = append(args, "--size="+strconv.FormatInt(j.Size, 10))
	}
	if j.EndFsync {
		args = append(args, "--end_fsync=1")
	}
	return args
}

func (j Job) validate() error {
	switch {
	case j.File == "":
		return errors.New("fiorun: no file")
	case j.RW == "":
		return errors.New("fiorun: no rw mode")
	case j.BS <= 0:
		return fmt.Errorf("fiorun: block size %d must be positive", j.BS)
	case j.IODepth <= 0:
		return fmt.Errorf("fiorun: iodepth %d must be positive", j.IODepth)
	case j.Once && j.Size <= 0:
		return fmt.Errorf("fiorun: a job run once needs a positive size, got %d", j.Size)
	case !j.Once && j.Seconds <= 0:
		return fmt.Errorf("fiorun: run time %ds must be positive", j.Seconds)
	case j.Size < 0:
		return fmt.Errorf("fiorun: size %d must not be negative", j.Size)
	}
	return nil
}

// Run runs fio for j and parses its report. It fails with ErrNoFio when fio
// is missing, and with fio's own message when fio fails.
func Run(ctx context.Context, j Job) (Result, error) {
	if err := j.validate(); err != nil {
		return Result{}, err
	}
	bin, err := exec.LookPath("fio")
	if err != nil {
		return Result{}, fmt.Errorf("fiorun: %w", ErrNoFio)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, Args(j)...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return Result{}, fmt.Errorf("fiorun: fio %s on %s: %w: %s", j.RW, j.File, err, msg)
	}
	res, err := Parse(stdout.Bytes())
	if err != nil {
		return Result{}, fmt.Errorf("fiorun: fio %s on %s: %w", j.RW, j.File, err)
	}
	return res, nil
}

type report struct {
	Jobs []struct {
		Error int      `json:"error"`
		Read  dirStats `json:"read"`
		Write dirStats `json:"write"`
	} `json:"jobs"`
}

type dirStats struct {
	IOPS     float64 `json:"iops"`
	BWBytes  float64 `json:"bw_bytes"`
	TotalIOs int64   `json:"total_ios"`
	LatNS    latNS   `json:"lat_ns"`
	CLatNS   latNS   `json:"clat_ns"`
}

type latNS struct {
	N          int64              `json:"N"`
	Percentile map[string]float64 `json:"percentile"`
}

// percentile returns the p-th percentile (p as fio writes it, "50.000000").
func (d dirStats) percentile(p string) (float64, bool) {
	if v, ok := d.LatNS.Percentile[p]; ok {
		return v, true
	}
	v, ok := d.CLatNS.Percentile[p]
	return v, ok
}

// Parse extracts the figures from fio's --output-format=json report. Text
// fio prints before the JSON object (warnings) is skipped.
func Parse(out []byte) (Result, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return Result{}, errors.New("no JSON object in fio output")
	}
	var r report
	if err := json.Unmarshal(out[i:], &r); err != nil {
		return Result{}, fmt.Errorf("parsing fio JSON: %w", err)
	}
	if len(r.Jobs) == 0 {
		return Result{}, errors.New("fio report has no jobs")
	}
	var res Result
	var p50, p99 float64
	var weight int64
	for _, jb := range r.Jobs {
		if jb.Error != 0 {
			return Result{}, fmt.Errorf("fio job failed with error %d", jb.Error)
		}
		for _, d := range []dirStats{jb.Read, jb.Write} {
			if d.TotalIOs == 0 && d.IOPS == 0 {
				continue
			}
			res.IOPS += d.IOPS
			res.MiBps += d.BWBytes / (1 << 20)
			a, ok1 := d.percentile("50.000000")
			b, ok2 := d.percentile("99.000000")
			if !ok1 || !ok2 {
				return Result{}, errors.New("fio report has no latency percentiles")
			}
			// Mixed jobs: weight each direction by its op count (an
			// approximation; fio reports no combined percentile).
			w := d.TotalIOs
			if w <= 0 {
				w = 1
			}
			p50 += a * float64(w)
			p99 += b * float64(w)
			weight += w
		}
	}
	if weight == 0 {
		return Result{}, errors.New("fio report has no I/O")
	}
	res.P50 = time.Duration(p50 / float64(weight))
	res.P99 = time.Duration(p99 / float64(weight))
	return res, nil
}
