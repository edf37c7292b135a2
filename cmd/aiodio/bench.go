package main

import "github.com/spf13/cobra"

// `aiodio bench` groups the benchmarks; each one (bench_device.go, and
// bench_file.go later) registers itself with addBenchCommand.

func init() { addCommand(newBenchCmd) }

var benchCommands []func(a *app) *cobra.Command

func addBenchCommand(f func(a *app) *cobra.Command) { benchCommands = append(benchCommands, f) }

func newBenchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure aiodio beside fio on the same file",
		Long: "bench runs a workload through aiodio and, with --compare-fio, the same workload\n" +
			"through fio (ioengine=io_uring, direct=1) on the same file right after it, and\n" +
			"prints both figures and their ratio. Machines are noisy: compare ratios.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown benchmark %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return usagef("%s needs a benchmark", cmd.CommandPath())
		},
	}
	for _, f := range benchCommands {
		cmd.AddCommand(f(a))
	}
	return cmd
}

// checkBenchFlags checks the flags every bench command shares: --engine,
// --seconds and --rounds.
func checkBenchFlags(engine string, seconds, rounds int) error {
	if err := checkEngine(engine); err != nil {
		return err
	}
	if seconds < 1 || seconds > 3600 {
		return usagef("--seconds %d out of range [1, 3600]", seconds)
	}
	if rounds < 1 || rounds > 100 {
		return usagef("--rounds %d out of range [1, 100]", rounds)
	}
	return nil
}
