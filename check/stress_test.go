package check

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	seedFlag    = flag.Int64("seed", 0, "replay the op sequence of this seed (also AIODIO_SEED)")
	opsFlag     = flag.Int("check.ops", 0, "ops per stress run (0: the test's default)")
	wFlag       = flag.String("check.weights", "", "op kind weights, e.g. buf-write=0,truncate=100")
	fixedFlag   = flag.Bool("check.fixedsize", false, "presized files, no truncates (EOF never moves)")
	sharedFlag  = flag.Bool("check.shared", false, "all workers share one async queue")
	rtFlag      = flag.Duration("check.roundtimeout", 0, "report a round as hung after this long (0: default)")
	filesFlag   = flag.Int("check.files", 0, "files (0: default)")
	maxFileFlag = flag.Int64("check.maxfile", 0, "maximum file size (0: default)")
	workersFlag = flag.Int("check.workers", 0, "workers (0: default)")
	roundFlag   = flag.Int("check.roundops", 0, "ops per round (0: default)")
	depthFlag   = flag.Int("check.depth", 0, "async queue depth per worker (0: default)")
	bsFlag      = flag.Int("check.blocksize", 0, "volume block size for the sim tests (0: 4096)")
)

// parseWeights parses -check.weights.
func parseWeights(t *testing.T, s string) map[string]int {
	if s == "" {
		return nil
	}
	m := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			t.Fatalf("-check.weights: bad %q", kv)
		}
		m[k] = n
	}
	return m
}

// testSeed returns the seed to use: -seed, AIODIO_SEED, or a fresh one.
func testSeed(t *testing.T) int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	if s := os.Getenv("AIODIO_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			t.Fatalf("AIODIO_SEED=%q: %v", s, err)
		}
		return v
	}
	return time.Now().UnixNano()
}

// runStress runs the workload on tg and fails the test on any finding.
func runStress(t *testing.T, tg Target, cfg Config) Report {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = testSeed(t)
	}
	if *opsFlag > 0 {
		cfg.Ops = *opsFlag
	}
	for _, o := range []struct {
		flag int64
		dst  any
	}{{int64(*filesFlag), &cfg.Files}, {*maxFileFlag, &cfg.MaxFileSize}, {int64(*workersFlag), &cfg.Workers}, {int64(*roundFlag), &cfg.RoundOps}, {int64(*depthFlag), &cfg.QueueDepth}} {
		if o.flag > 0 {
			switch d := o.dst.(type) {
			case *int:
				*d = int(o.flag)
			case *int64:
				*d = o.flag
			}
		}
	}
	if *rtFlag > 0 {
		cfg.RoundTimeout = *rtFlag
	}
	if *sharedFlag {
		cfg.SharedQueue = true
	}
	if *fixedFlag {
		cfg.FixedSize = true
	}
	if w := parseWeights(t, *wFlag); w != nil {
		cfg.Weights = w
	}
	if os.Getenv("AIODIO_CHECK_LOGOPS") != "" {
		cfg.Log = os.Stderr
	}
	t.Logf("seed %d (replay with -seed=%d or AIODIO_SEED=%d)", cfg.Seed, cfg.Seed, cfg.Seed)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Run(ctx, tg, cfg)
	t.Log(rep.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesVerified == 0 || rep.Ops < cfg.Ops {
		t.Fatalf("run did too little: %d ops, %d bytes verified", rep.Ops, rep.BytesVerified)
	}
	return rep
}

func TestStressKernelDir(t *testing.T) {
	dir := t.TempDir()
	tg, err := NewDirTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	// O_DIRECT must work here, or the run proves nothing about direct I/O.
	f, err := tg.OpenFile("probe", os.O_RDWR|os.O_CREATE|0x4000, 0o644)
	if err != nil {
		t.Skipf("no O_DIRECT on %s: %v", dir, err)
	}
	mem, off := f.DIOAlign()
	t.Logf("%s: direct I/O alignment: memory %d, offset %d", dir, mem, off)
	f.Close()
	tg.Remove("probe")
	runStress(t, tg, Config{Ops: 1500, SharedQueue: true})
}
