package main

import (
	"fmt"
	"os"

	"github.com/aiodio/aiodio"
	"github.com/spf13/cobra"
)

// `aiodio mkfs PATH --size 1G [--block-size 4096]`: an empty volume on an
// image file (created sparse) or a block device, through aiodio.Mkfs.

func init() { addCommand(newMkfsCmd) }

func newMkfsCmd(a *app) *cobra.Command {
	var size sizeValue
	blockSize := 4096
	cmd := &cobra.Command{
		Use:   "mkfs PATH",
		Short: "Create an empty volume on an image file or block device",
		Long: "mkfs writes an empty aiodio volume on PATH. A missing image file is created\n" +
			"sparse with --size bytes; an existing smaller image grows to --size (no --size\n" +
			"keeps an existing file's size). On a block device --size is ignored. Like any\n" +
			"mkfs it does not zero the data area: whatever it holds is never readable\n" +
			"through the volume.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if size < 0 {
				return usagef("--size must not be negative")
			}
			if blockSize < 512 || blockSize > 64<<10 || blockSize&(blockSize-1) != 0 {
				return usagef("--block-size %d must be a power of two between 512 and 65536", blockSize)
			}
			st, err := os.Stat(path)
			switch {
			case err == nil && st.IsDir():
				return usagef("%s is a directory", path)
			case err != nil && os.IsNotExist(err) && size == 0:
				return usagef("%s does not exist: give --size to create it", path)
			case err == nil && st.Mode().IsRegular() && st.Size() == 0 && size == 0:
				return usagef("%s is empty: give --size", path)
			}
			if err := aiodio.Mkfs(path, aiodio.MkfsOptions{Size: int64(size), BlockSize: blockSize}); err != nil {
				return fmt.Errorf("mkfs %s: %w", path, err)
			}
			st, err = os.Stat(path)
			if err != nil {
				return err
			}
			what := "image"
			if st.Mode()&os.ModeDevice != 0 {
				what = "device"
			} else {
				what = "image " + formatSize(st.Size())
			}
			fmt.Fprintf(a.stdout, "mkfs: %s: empty aiodio volume (%s, block size %d)\n", path, what, blockSize)
			return nil
		},
	}
	cmd.Flags().Var(&size, "size", "size of a new image file (e.g. 1G); 0 keeps an existing file's size")
	cmd.Flags().IntVar(&blockSize, "block-size", blockSize, "allocation unit in bytes (power of two, 512..65536)")
	return cmd
}

// exactArgs is cobra.ExactArgs reporting a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

// rangeArgs is cobra.RangeArgs reporting a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef("%s takes %d to %d arguments, got %d", cmd.CommandPath(), lo, hi, len(args))
		}
		return nil
	}
}
