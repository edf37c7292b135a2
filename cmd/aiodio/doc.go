// Command aiodio is the command-line face of the aiodio storage engine.
//
// Role: it turns the library into something a user can run: `mkfs`, `fsck`
// and `stat` (over aiodio.Mkfs, aiodio.Fsck and a
// read-only internal/meta mount), `demo` (a verified mixed workload on a
// poisoned temporary volume), `bench device` and `bench file` (the device
// engine, and files of a volume, beside fio on the same backing file,
// DESIGN §8), and `check` (package check's exerciser on a volume or a kernel
// directory).
//
// Structure: every subcommand lives in its own file and registers a
// constructor from an init function (addCommand for top-level commands,
// addBenchCommand for `bench` workloads); the root command is built fresh by
// newRootCmd, so tests run the whole CLI in-process with Execute. Adding a
// subcommand is adding a file:
//
//	func init() { addCommand(newMkfsCmd) }            // cmd/aiodio/mkfs.go
//	func init() { addBenchCommand(newBenchFileCmd) }  // cmd/aiodio/bench_file.go
//
// Pieces meant for reuse by later benchmarks: prepareTarget/prepareImage (a
// fully written image), runDevbench-style progress (newTimedProgress),
// fiorun + fioRW + addFio (the fio side), medianRound (--rounds) and
// printBench (the table and the --json contract). Usage errors are made
// with usagef so they exit 2; any other error exits 1.
//
// Verification rules of `demo`: one goroutine owns the model and the Ring;
// a write is never submitted over a range with an op in flight, nor a read
// over a range with a write in flight, so every byte read has exactly one
// correct value (the model's); synchronous ops (buffered I/O, truncate,
// reads across EOF) run on a file only once it has nothing in flight. Any
// poison-marker cell read counts as stale data (I1). A watchdog reports a
// workload that makes no progress for demoStall instead of hanging.
//
// Conventions enforced here: logs go to stderr through log/slog and are quiet
// unless --verbose; results go to stdout; progress goes to stderr (a bar on a
// terminal, plain lines otherwise). Exit status: 0 success, 1 failure or
// findings (a verification mismatch is a failure), 2 usage error.
package main
