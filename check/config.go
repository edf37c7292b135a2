package check

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Config sizes a stress run. The zero value is a valid small run.
type Config struct {
	// Seed makes the op sequence replayable (the interleaving is not).
	// 0 picks one from the clock; Report.Seed has it.
	Seed int64
	// Files is the number of files worked on concurrently (default 4).
	Files int
	// Ops is the number of operations of the run (default 2000). Full
	// verification reads are extra.
	Ops int
	// Workers is the number of goroutines issuing ops (default 4).
	Workers int
	// QueueDepth is the async ops each worker keeps in flight (default 8).
	QueueDepth int
	// SharedQueue makes all workers submit to and reap from one async
	// queue (of depth Workers*QueueDepth) concurrently, instead of one
	// queue each.
	SharedQueue bool
	// RoundOps is the number of ops between two quiescent points
	// (default 48): within a round everything runs concurrently.
	RoundOps int
	// MaxFileSize bounds file sizes (default 1 MiB).
	MaxFileSize int64
	// MaxIO bounds one read or write (default 64 KiB).
	MaxIO int
	// VerifyEvery is the number of rounds between full verifications
	// after Sync (default 6). The run always ends with one.
	VerifyEvery int
	// RecycleEvery is the number of rounds between removing and
	// recreating one file, whose blocks then go to the others (default 10;
	// negative: never).
	RecycleEvery int
	// CrashEvery, on a Crasher target, cuts the power every CrashEvery
	// verifications: right after the round that follows a Sync and full
	// verification, the target crashes and remounts, and every cell must
	// hold its synced value or a value of that round's ops, never stale
	// data (I11). 0: never.
	CrashEvery int
	// Faults, when set, is called with true before each round's ops start
	// and with false once they have all completed (quiescent points,
	// verifications and crashes run without faults): a test installs and
	// removes device fault injections there.
	Faults func(on bool)
	// ExpectErrors: op errors matching it (errors.Is) are injected faults,
	// counted in Report.Injected instead of Errors; the model treats the
	// op as failed (its range may hold old or new data).
	ExpectErrors error
	// Prefix is prepended to the file names ("stress-N").
	Prefix string
	// Poison is the marker the device was filled with (default
	// DefaultPoison; CellSize bytes).
	Poison []byte
	// AlignedDirect forces direct I/O to be aligned even when the
	// target serves unaligned direct I/O.
	AlignedDirect bool
	// NoReopen skips closing and reopening a Reopener target at the end.
	NoReopen bool
	// Keep leaves the files in place at the end.
	Keep bool
	// Weights overrides the relative frequency of op kinds, by the names
	// the report uses ("async-write", "buf-read", "truncate", ...); 0
	// disables a kind. Kinds not named keep their default weight.
	Weights map[string]int
	// BufferedVerify makes the full verifications read through the
	// buffered handle only (default: alternately direct and buffered).
	// DirectVerify: through the direct handle only.
	BufferedVerify, DirectVerify bool
	// FixedSize creates every file with size MaxFileSize (a hole) and
	// never truncates: EOF never moves, which isolates EOF-related bugs.
	FixedSize bool
	// Progress, when set, is called after every round with the ops done
	// so far and Ops (for a progress bar), from Run's goroutine.
	Progress func(done, total int)
	// Log receives progress lines (nil: quiet).
	Log io.Writer
	// RoundTimeout reports a round that takes longer as a hang, with the
	// stacks of all goroutines (default 3 minutes).
	RoundTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if c.Files <= 0 {
		c.Files = 4
	}
	if c.Ops <= 0 {
		c.Ops = 2000
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.QueueDepth <= 0 {
		c.QueueDepth = 8
	}
	if c.RoundOps <= 0 {
		c.RoundOps = 48
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = 1 << 20
	}
	c.MaxFileSize &^= 4095
	if c.MaxFileSize < 64<<10 {
		c.MaxFileSize = 64 << 10
	}
	if c.MaxIO <= 0 {
		c.MaxIO = 64 << 10
	}
	c.MaxIO &^= CellSize - 1
	if c.MaxIO < 4096 {
		c.MaxIO = 4096
	}
	if c.VerifyEvery <= 0 {
		c.VerifyEvery = 6
	}
	if c.RecycleEvery == 0 {
		c.RecycleEvery = 10
	}
	if c.Poison == nil {
		c.Poison = DefaultPoison
	}
	if c.RoundTimeout <= 0 {
		c.RoundTimeout = 3 * time.Minute
	}
}

// Report is the outcome of Run.
type Report struct {
	Target   string
	Seed     int64
	Ops      int
	Rounds   int
	OpCounts map[string]int
	// BytesWritten counts bytes acknowledged by writes; BytesRead bytes
	// returned by reads; BytesVerified bytes checked against the model
	// (every byte read is).
	BytesWritten, BytesRead, BytesVerified int64
	// PoisonBytes counts bytes read that carry the poison marker.
	PoisonBytes int64
	// Mismatches counts cells (and sizes) that disagree with the model;
	// Errors unexpected errors of ops; Completions async completion
	// protocol violations (unknown or duplicate completions).
	Mismatches, Errors, Completions int
	// Busy counts direct writes that failed with EBUSY because cached
	// pages of their range could not be invalidated before submission:
	// DESIGN I5 allows it (nothing is written; the model accepts old or
	// new data there), Linux falls back to buffered I/O instead.
	Busy int
	// NoWait counts async ops with RWF_NOWAIT that completed with EAGAIN
	// (allowed: nothing done; the model accepts old or new data).
	NoWait int
	// Injected counts op errors matching Config.ExpectErrors.
	Injected int
	// RemovedErrs counts ops that failed with ESTALE or ENOENT because
	// their file was removed during the round (allowed).
	RemovedErrs int
	// StalePageCacheEIO counts EIO from fsyncs (and RWF_DSYNC writes) of a
	// target that reports direct/buffered collisions that way (Linux; see
	// StalePageCacheReporter). Allowed; always 0 on aiodio.
	StalePageCacheEIO int
	// Crashes counts power cuts survived (CrashEvery).
	Crashes int
	// Findings are the target's consistency check findings.
	Findings []string
	// Failures describes the first failures, each with the ops that
	// touched the place (the short op log).
	Failures []string
	Duration time.Duration
}

// Failed reports whether the run found anything wrong.
func (r *Report) Failed() bool {
	return r.PoisonBytes != 0 || r.Mismatches != 0 || r.Errors != 0 || r.Completions != 0 || len(r.Findings) != 0
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "check %s seed=%d (replay: AIODIO_SEED=%d): %d ops in %d rounds, %v\n", r.Target, r.Seed, r.Seed, r.Ops, r.Rounds, r.Duration.Round(time.Millisecond))
	fmt.Fprintf(&b, "  written %d B, read %d B, verified %d B; poison bytes %d, mismatches %d, errors %d, completion violations %d, fsck findings %d; direct writes refused with EBUSY %d, NOWAIT ops with EAGAIN %d\n",
		r.BytesWritten, r.BytesRead, r.BytesVerified, r.PoisonBytes, r.Mismatches, r.Errors, r.Completions, len(r.Findings), r.Busy, r.NoWait)
	var kinds []string
	for k := kind(0); k < numKinds; k++ {
		if n := r.OpCounts[k.String()]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
	}
	fmt.Fprintf(&b, "  ops: %s\n", strings.Join(kinds, " "))
	if r.RemovedErrs > 0 {
		fmt.Fprintf(&b, "  ops on files removed under them (ESTALE/ENOENT): %d\n", r.RemovedErrs)
	}
	if r.StalePageCacheEIO > 0 {
		fmt.Fprintf(&b, "  EIO from fsync after a direct write collided with buffered I/O (the kernel's stale page cache report; data verified): %d\n", r.StalePageCacheEIO)
	}
	if r.Injected > 0 {
		fmt.Fprintf(&b, "  ops failed by injected faults: %d\n", r.Injected)
	}
	if r.Crashes > 0 {
		fmt.Fprintf(&b, "  power cuts survived: %d\n", r.Crashes)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  FINDING: %s\n", f)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  FAILURE: %s\n", strings.ReplaceAll(strings.TrimRight(f, "\n"), "\n", "\n    "))
	}
	return b.String()
}
