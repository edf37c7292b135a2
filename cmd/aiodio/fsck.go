package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/aiodio/aiodio"
	"github.com/spf13/cobra"
)

// `aiodio fsck PATH`: checks a closed volume without changing it (aiodio.Fsck):
// exit 0 when clean, 1 with every finding listed, 1 with a clear error when the
// image is not a readable aiodio volume.

func init() { addCommand(newFsckCmd) }

func newFsckCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "fsck PATH",
		Short: "Check a volume's metadata without changing it",
		Long: "fsck checks the volume on PATH (image file or block device) read-only: every\n" +
			"extent inside the device, no block owned twice, free space = device - owned,\n" +
			"sizes consistent with extents, directory link counts. It exits 0 when the\n" +
			"volume is clean and 1 listing every finding, or when PATH is not an aiodio\n" +
			"volume it can read. The volume must not be open.",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if st, err := os.Stat(path); err != nil {
				return fmt.Errorf("fsck: %w", err)
			} else if st.IsDir() {
				return usagef("%s is a directory, not a volume image", path)
			}
			findings, err := safeFsck(path)
			if err != nil {
				return fmt.Errorf("fsck %s: %w", path, err)
			}
			if len(findings) == 0 {
				fmt.Fprintf(a.stdout, "fsck: %s: clean\n", path)
				return nil
			}
			for _, f := range findings {
				fmt.Fprintf(a.stdout, "%s\n", f)
			}
			return fmt.Errorf("fsck %s: %d finding(s)", path, len(findings))
		},
	}
}

// safeFsck runs aiodio.Fsck and turns a panic (a bug, never expected) into
// an error, so a corrupt image never crashes the command.
func safeFsck(path string) (findings []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			findings, err = nil, fmt.Errorf("internal error while checking (please report): %v: %w", r, errCorrupt)
		}
	}()
	return fsckVolume(path)
}

// fsckVolume checks a volume; tests replace it to inject findings.
var fsckVolume = aiodio.Fsck

var errCorrupt = errors.New("the volume could not be checked")
