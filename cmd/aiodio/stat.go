package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/spf13/cobra"
)

// `aiodio stat PATH [FILE]`: volume usage from meta.Stats, or one file's
// attributes and extent map (holes included). The root package exposes
// neither, so this mounts the metadata read-only itself (internal/meta over
// a read-only, exclusively locked device: nothing is written).

func init() { addCommand(newStatCmd) }

func newStatCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "stat PATH [FILE]",
		Short: "Show a volume's usage, or one file's size and extent map",
		Long: "stat mounts the volume on PATH read-only and prints its usage (block size,\n" +
			"total/used/free/pending blocks, inodes, files, directories, extents, journal\n" +
			"usage), or, with FILE (a name inside the volume, e.g. logs/wal.0), its size,\n" +
			"mode, blocks and extent map: each range of file blocks is a hole, unwritten\n" +
			"(allocated, reads as zeros) or written. The volume must not be open.",
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, closeFS, err := mountReadOnly(a, args[0])
			if err != nil {
				return err
			}
			defer closeFS()
			if len(args) == 1 {
				printVolumeStats(a.stdout, args[0], fsys.Stats())
				return nil
			}
			return printFileStat(a.stdout, fsys, args[1])
		},
	}
}

// mountReadOnly opens path read-only with the exclusive lock and mounts its
// metadata without writing anything.
func mountReadOnly(a *app, path string) (fsys *meta.FS, closeFS func(), err error) {
	if st, err := os.Stat(path); err != nil {
		return nil, nil, err
	} else if st.IsDir() {
		return nil, nil, usagef("%s is a directory, not a volume image", path)
	}
	dev, err := openDevice(path, device.OpenOptions{ReadOnly: true, Exclusive: true, Logger: a.log})
	if err != nil {
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%s: the volume is open elsewhere: %w", path, err)
		}
		return nil, nil, fmt.Errorf("opening %s: %w", path, err)
	}
	fsys, err = safeMount(dev, a)
	if err != nil {
		dev.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return fsys, func() { fsys.Close(); dev.Close() }, nil
}

func safeMount(dev device.Device, a *app) (fsys *meta.FS, err error) {
	defer func() {
		if r := recover(); r != nil {
			fsys, err = nil, fmt.Errorf("internal error while mounting (please report): %v: %w", r, errCorrupt)
		}
	}()
	return meta.Mount(dev, meta.MountOptions{ReadOnly: true, Logger: a.log})
}

func printVolumeStats(w io.Writer, path string, s meta.Stats) {
	bs := int64(s.BlockSize)
	blocks := func(n int64) string { return fmt.Sprintf("%d (%s)", n, fmtBytes(n*bs)) }
	pct := func(n, of int64) string {
		if of == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	}
	fmt.Fprintf(w, "volume %s\n", path)
	fmt.Fprintf(w, "  uuid            %x\n", s.UUID)
	fmt.Fprintf(w, "  block size      %d\n", s.BlockSize)
	fmt.Fprintf(w, "  total blocks    %s\n", blocks(s.TotalBlocks))
	fmt.Fprintf(w, "  data blocks     %s, from block %d\n", blocks(s.DataBlocks), s.DataStart)
	fmt.Fprintf(w, "  used blocks     %s, %s of data\n", blocks(s.UsedBlocks), pct(s.UsedBlocks, s.DataBlocks))
	fmt.Fprintf(w, "  free blocks     %s\n", blocks(s.FreeBlocks))
	fmt.Fprintf(w, "  pending blocks  %s (freed, reusable after the next commit)\n", blocks(s.PendingBlocks))
	fmt.Fprintf(w, "  inodes          %d (%d files, %d directories)\n", s.Inodes, s.Files, s.Dirs)
	fmt.Fprintf(w, "  extents         %d\n", s.Extents)
	fmt.Fprintf(w, "  journal         %d of %d blocks used (%s)\n", s.JournalUsed, s.JournalBlocks, pct(s.JournalUsed, s.JournalBlocks))
	fmt.Fprintf(w, "  checkpoint      slot %d, %d blocks per slot\n", s.CheckpointSlot, s.CheckpointBlocks)
	fmt.Fprintf(w, "  metadata        %s of %s budget\n", fmtBytes(s.MetaBytes), fmtBytes(s.MetaBudget))
}

// extentRow is one line of a file's extent map.
type extentRow struct {
	fileBlock, count, devBlock int64
	state                      string
}

// extentMap lists the file's extents with the holes between them, up to the
// last block of the file or of its last extent (preallocation past EOF).
func extentMap(exts []meta.Mapping, size, bs int64) []extentRow {
	var rows []extentRow
	next := int64(0)
	for _, m := range exts {
		if m.FileBlock > next {
			rows = append(rows, extentRow{next, m.FileBlock - next, -1, "hole"})
		}
		state := "written"
		if m.State == meta.Unwritten {
			state = "unwritten"
		}
		rows = append(rows, extentRow{m.FileBlock, m.Count, m.DevBlock, state})
		next = m.FileBlock + m.Count
	}
	if end := (size + bs - 1) / bs; end > next {
		rows = append(rows, extentRow{next, end - next, -1, "hole"})
	}
	return rows
}

func printFileStat(w io.Writer, fsys *meta.FS, name string) error {
	at, err := fsys.Stat(name)
	if err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	bs := int64(fsys.BlockSize())
	kind := "file"
	if at.Mode.IsDir() {
		kind = "directory"
	}
	fmt.Fprintf(w, "%s %s\n", kind, name)
	fmt.Fprintf(w, "  inode   %d\n", at.Ino)
	fmt.Fprintf(w, "  size    %d (%s)\n", at.Size, fmtBytes(at.Size))
	fmt.Fprintf(w, "  mode    %v\n", at.Mode)
	fmt.Fprintf(w, "  links   %d\n", at.Nlink)
	fmt.Fprintf(w, "  blocks  %d of %d bytes (%s allocated)\n", at.Blocks, bs, fmtBytes(at.Blocks*bs))
	fmt.Fprintf(w, "  mtime   %s\n", at.Mtime.UTC().Format("2006-01-02 15:04:05.000000000Z"))
	if at.Mode.IsDir() {
		ents, err := fsys.ReadDir(name)
		if err != nil {
			return fmt.Errorf("readdir %s: %w", name, err)
		}
		fmt.Fprintf(w, "  entries %d\n", len(ents))
		return nil
	}
	exts, err := fsys.Extents(at.Ino)
	if err != nil {
		return fmt.Errorf("extents of %s: %w", name, err)
	}
	rows := extentMap(exts, at.Size, bs)
	if len(rows) == 0 {
		fmt.Fprintln(w, "  extents none")
		return nil
	}
	fmt.Fprintln(w, "  extent map (file blocks):")
	t := newTable("file blocks", "count", "device block", "state")
	for _, r := range rows {
		dev := "-"
		if r.devBlock >= 0 {
			dev = fmt.Sprint(r.devBlock)
		}
		t.row(fmt.Sprintf("%d..%d", r.fileBlock, r.fileBlock+r.count-1), fmt.Sprint(r.count), dev, r.state)
	}
	t.write(w)
	return nil
}
