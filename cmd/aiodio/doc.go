// Command aiodio is the command-line face of the aiodio storage engine.
//
// Role: it turns the library into something a user can run: `demo` (a
// verified workload on a temporary image), `bench device` (the device engine
// beside fio on the same file, DESIGN §8), and, as the layers land, mkfs,
// fsck, stat, bench file, check and mount.
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
// Conventions enforced here: logs go to stderr through log/slog and are quiet
// unless --verbose; results go to stdout; progress goes to stderr (a bar on a
// terminal, plain lines otherwise). Exit status: 0 success, 1 failure or
// findings (a verification mismatch is a failure), 2 usage error.
package main
