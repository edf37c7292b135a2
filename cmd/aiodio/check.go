package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/check"
	"github.com/spf13/cobra"
)

// `aiodio check DIR|IMAGE`: the exerciser of package check (a seeded,
// concurrent workload verified byte by byte against a model) on a directory
// of a kernel filesystem or on an aiodio volume. A missing IMAGE is created
// for the run: filled with the poison marker, mkfs'd, removed afterwards.

func init() { addCommand(newCheckCmd) }

type checkOptions struct {
	cfg      check.Config
	maxFile  sizeValue
	size     sizeValue
	engine   string
	policy   string
	strict   bool
	keep     bool
	progress bool
	scenario string
}

func newCheckCmd(a *app) *cobra.Command {
	o := checkOptions{cfg: check.Config{Files: 4, Ops: 2000, Workers: 4, QueueDepth: 8}, maxFile: 1 << 20, size: 256 << 20,
		engine: "auto", policy: "unwritten"}
	cmd := &cobra.Command{
		Use:   "check DIR|IMAGE",
		Short: "Run the verified AIO-DIO exerciser on a volume or a kernel directory",
		Long: "check runs a seeded, concurrent workload of async and sync direct and buffered\n" +
			"reads and writes, extending writes, truncates, hole punches, preallocation and\n" +
			"fsyncs on a few files, and verifies every byte read against a model (no stale\n" +
			"or poison bytes, no lost or torn writes, sizes never ahead of data).\n\n" +
			"DIR: a directory of a kernel filesystem (ext4, xfs, tmpfs, a FUSE mount),\n" +
			"driven through open(2) with O_DIRECT and pread/pwrite, async ops on goroutines\n" +
			"(proves the suite itself) or, with --engine uring, through io_uring (checks the\n" +
			"filesystem's asynchronous direct I/O; Linux's direct/buffered page collisions\n" +
			"show there: --weights buf-write=0,async-buf-write=0 leaves buffered writes out).\n" +
			"IMAGE: an aiodio volume (image file or block device); a missing IMAGE is\n" +
			"created for the run with --size, filled with the poison marker before mkfs,\n" +
			"and removed afterwards (unless --keep). The volume is fsck'd and reopened at\n" +
			"the end. Exit 1 with the seed and the short op log of each failure.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runCheck(cmd.Context(), a, args[0], o) },
	}
	f := cmd.Flags()
	f.Int64Var(&o.cfg.Seed, "seed", 0, "seed of the op sequence (0: from the clock; the report prints it)")
	f.IntVar(&o.cfg.Ops, "ops", o.cfg.Ops, "number of operations")
	f.IntVar(&o.cfg.Files, "files", o.cfg.Files, "files worked on concurrently")
	f.IntVar(&o.cfg.Workers, "workers", o.cfg.Workers, "goroutines issuing ops")
	f.IntVar(&o.cfg.QueueDepth, "qd", o.cfg.QueueDepth, "async ops each worker keeps in flight")
	f.Var(&o.maxFile, "max-file-size", "bound on file sizes")
	f.Var(&o.size, "size", "size of a new IMAGE")
	f.StringVar(&o.engine, "engine", o.engine, "device engine for a volume: auto, uring or threads; for a directory, uring sends async ops through io_uring (default: goroutines with pread/pwrite)")
	f.StringVar(&o.policy, "hole-policy", o.policy, "hole policy for a volume: unwritten or fallback")
	f.BoolVar(&o.strict, "strict-alignment", false, "volume: misaligned direct I/O fails with EINVAL like Linux")
	f.BoolVar(&o.keep, "keep", false, "keep the files (and a created IMAGE) afterwards")
	f.BoolVar(&o.progress, "progress", false, "print a line per round to stderr")
	f.StringVar(&o.scenario, "scenario", "", "run one named race instead of the random workload, --ops times: extend-truncate (an async direct write past end of file racing a truncate that raises the size) or page-collision (an async direct write racing a buffered write into its first page); for a directory use --engine uring")
	f.StringToIntVar(&o.cfg.Weights, "weights", nil, "op mix by kind name as in the report, e.g. truncate=100,buf-write=0 (0 leaves a kind out)")
	return cmd
}

func runCheck(ctx context.Context, a *app, path string, o checkOptions) error {
	if err := checkEngine(o.engine); err != nil {
		return err
	}
	if _, ok := scenarios[o.scenario]; o.scenario != "" && !ok {
		return usagef("--scenario %q: want extend-truncate or page-collision", o.scenario)
	}
	for name, w := range o.cfg.Weights {
		if !slices.Contains(check.OpKinds(), name) || w < 0 {
			return usagef("--weights: %s=%d: want a weight ≥ 0 for one of %s", name, w, strings.Join(check.OpKinds(), ", "))
		}
	}
	vo := aiodio.Options{Engine: o.engine, StrictAlignment: o.strict, Logger: a.log}
	policy, err := parsePolicy(o.policy)
	if err != nil {
		return err
	}
	vo.HolePolicy = policy
	switch {
	case o.cfg.Ops < 1 || o.cfg.Ops > 100_000_000:
		return usagef("--ops %d out of range", o.cfg.Ops)
	case o.cfg.Files < 1 || o.cfg.Files > 1024:
		return usagef("--files %d out of range [1, 1024]", o.cfg.Files)
	case o.cfg.Workers < 1 || o.cfg.Workers > 1024:
		return usagef("--workers %d out of range [1, 1024]", o.cfg.Workers)
	case o.cfg.QueueDepth < 1 || o.cfg.QueueDepth > 1024:
		return usagef("--qd %d out of range [1, 1024]", o.cfg.QueueDepth)
	case o.maxFile < 64<<10:
		return usagef("--max-file-size %s must be at least 64KiB", formatSize(int64(o.maxFile)))
	}
	o.cfg.MaxFileSize = int64(o.maxFile)
	o.cfg.Keep = o.keep
	if o.progress {
		o.cfg.Log = a.stderr
	}
	created := false
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if o.size < 16<<20 || o.size%4096 != 0 {
			return usagef("--size %s must be a multiple of 4096 and at least 16MiB", formatSize(int64(o.size)))
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("creating %s: %w", path, err)
		}
		f.Close()
		created = true
		if !o.keep {
			defer os.Remove(path)
		}
		if err := fillImage(ctx, path, int64(o.size), check.DefaultPoison); err != nil {
			return err
		}
		if err := aiodio.Mkfs(path, aiodio.MkfsOptions{}); err != nil {
			return fmt.Errorf("mkfs %s: %w", path, err)
		}
	} else if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	t, err := check.OpenTarget(path, vo)
	if err != nil {
		return fmt.Errorf("check: opening %s: %w", path, err)
	}
	if dt, ok := t.(*check.DirTarget); ok && o.engine == "uring" {
		dt.URing = true
	}
	what := "volume"
	if dt, ok := t.(*check.DirTarget); ok {
		what = "kernel directory (async ops on goroutines)"
		if dt.URing {
			what = "kernel directory (async ops through io_uring)"
		}
	} else if created {
		what = "new volume (poisoned before mkfs)"
	}
	if o.scenario != "" {
		return runScenario(ctx, a, t, what, path, o)
	}
	fmt.Fprintf(a.stdout, "aiodio check: %s %s, %d ops on %d files, %d workers × queue depth %d\n",
		what, path, o.cfg.Ops, o.cfg.Files, o.cfg.Workers, o.cfg.QueueDepth)
	rep, runErr := check.Run(ctx, t, o.cfg)
	if cerr := t.Close(); cerr != nil && runErr == nil {
		runErr = fmt.Errorf("closing %s: %w", path, cerr)
	}
	fmt.Fprintln(a.stdout, strings.TrimRight(rep.String(), "\n"))
	if runErr != nil {
		return runErr
	}
	if rep.Failed() {
		return fmt.Errorf("check failed (seed %d): %w", rep.Seed, check.ErrFailed)
	}
	fmt.Fprintf(a.stdout, "OK: seed %d, %s verified, 0 poison bytes, 0 mismatches\n", rep.Seed, fmtBytes(rep.BytesVerified))
	return nil
}

// scenarios are the races --scenario runs, with what a failed iteration
// means.
var scenarios = map[string]struct {
	run  func(context.Context, check.Target, int) (int, error)
	lost string
}{
	"extend-truncate": {check.ExtendTruncateRace, "completed writes lost (read back as zeros after a truncate that raised the size)"},
	"page-collision":  {check.PageCollisionRace, "direct writes lost bytes to a buffered write into the same page"},
}

// runScenario runs --scenario --ops times on t and closes it.
func runScenario(ctx context.Context, a *app, t check.Target, what, path string, o checkOptions) error {
	sc := scenarios[o.scenario]
	fmt.Fprintf(a.stdout, "aiodio check --scenario %s: %s %s, %d iterations\n", o.scenario, what, path, o.cfg.Ops)
	lost, err := sc.run(ctx, t, o.cfg.Ops)
	if cerr := t.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing %s: %w", path, cerr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s: %d of %d %s\n", o.scenario, lost, o.cfg.Ops, sc.lost)
	if lost > 0 {
		return fmt.Errorf("%s: %d of %d iterations lost data: %w", o.scenario, lost, o.cfg.Ops, check.ErrFailed)
	}
	fmt.Fprintf(a.stdout, "OK: nothing lost\n")
	return nil
}

// fillImage writes marker over the whole of path (size bytes).
func fillImage(ctx context.Context, path string, size int64, marker []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("filling %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := 0; i < len(buf); i += len(marker) {
		copy(buf[i:], marker)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return fmt.Errorf("filling %s: %w", path, err)
		}
	}
	return nil
}
