package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/fuse"
	"github.com/spf13/cobra"
)

// `aiodio mount IMAGE DIR`: serves the volume on IMAGE through FUSE on DIR
// in the foreground. It stops on SIGINT/SIGTERM (it unmounts; when the
// mount is busy it detaches it lazily and waits for the last user) or when
// the directory is unmounted from outside (umount, fusermount3 -u); then it
// closes the volume (write back, checkpoint) and exits 0. A second signal
// while a busy mount drains closes the volume at once (exit 1): later
// requests of the remaining users fail with EBADF.

func init() { addCommand(newMountCmd) }

type mountOpts struct {
	readOnly, strict, allowOther, fuseDebug bool
	engine                                  string
	cache                                   sizeValue
}

func newMountCmd(a *app) *cobra.Command {
	o := &mountOpts{engine: "auto"}
	cmd := &cobra.Command{
		Use:   "mount IMAGE DIR",
		Short: "Serve a volume through FUSE on a directory until interrupted or unmounted",
		Long: "mount opens the volume on IMAGE (image file or block device) and serves it on\n" +
			"the directory DIR through FUSE, so that any program can use its files, in the\n" +
			"foreground. It stops on Ctrl-C or SIGTERM, or when DIR is unmounted from\n" +
			"outside (umount DIR, fusermount3 -u DIR); it then closes the volume (writes\n" +
			"back, checkpoints) and exits 0. Mounting needs root (mount(2)) or fusermount3.\n\n" +
			"Every open bypasses the kernel's page cache (FOPEN_DIRECT_IO): buffered opens\n" +
			"use aiodio's page cache, O_DIRECT opens go to the device; see the fuse\n" +
			"package documentation for the semantics.",
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(cmd.Context(), a, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.readOnly, "read-only", false, "refuse every change through the mount (EROFS); the volume is still opened read-write and checkpointed at exit")
	f.StringVar(&o.engine, "engine", o.engine, "device engine: auto, uring or threads")
	f.Var(&o.cache, "cache", "page cache size (default 256MiB)")
	f.BoolVar(&o.strict, "strict-alignment", false, "misaligned O_DIRECT I/O fails with EINVAL, as on a kernel filesystem (default: served correctly)")
	f.BoolVar(&o.allowOther, "allow-other", false, "let other users use the mount (FUSE allow_other)")
	f.BoolVar(&o.fuseDebug, "fuse-debug", false, "with -v, log every FUSE request")
	return cmd
}

func runMount(ctx context.Context, a *app, o *mountOpts, img, dir string) error {
	if err := checkEngine(o.engine); err != nil {
		return err
	}
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("mount: %w", err)
	} else if !st.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	v, err := aiodio.Open(img, aiodio.Options{Engine: o.engine, CacheBytes: int64(o.cache), StrictAlignment: o.strict, Logger: a.log})
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	srv, err := fuse.Mount(dir, v, fuse.Options{ReadOnly: o.readOnly, AllowOther: o.allowOther, Debug: o.fuseDebug, Logger: a.log})
	if err != nil {
		if cerr := v.Close(); cerr != nil {
			a.log.Error("closing the volume", "err", cerr)
		}
		return fmt.Errorf("mount %s on %s: %w", img, dir, err)
	}
	mode := "read-write"
	if o.readOnly {
		mode = "read-only"
	}
	fmt.Fprintf(a.stdout, "aiodio: %s mounted on %s (%s); Ctrl-C or 'umount %s' to stop\n", img, dir, mode, dir)
	serveErr := serve(ctx, a, srv)
	cerr := v.Close()
	if err := errors.Join(serveErr, cerr); err != nil {
		return fmt.Errorf("mount %s: %w", img, err)
	}
	fmt.Fprintf(a.stdout, "aiodio: %s unmounted from %s, volume closed\n", img, dir)
	return nil
}

// serve waits for the end of the mount: an external unmount, or ctx's end
// (a signal), on which it unmounts — lazily when the mount is busy, then
// waiting for its last user unless another signal comes.
func serve(ctx context.Context, a *app, srv *fuse.Server) error {
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		a.log.Info("unmounted from outside", "dir", srv.Dir())
		return err
	case <-ctx.Done():
	}
	// Later signals: stop waiting for a busy mount's users.
	more := make(chan os.Signal, 1)
	signal.Notify(more, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(more)
	err := srv.Unmount()
	var pe *fs.PathError
	if err == nil || !errors.As(err, &pe) || pe.Op != "unmount" {
		// Unmounted: nil, or the errors of closing files the kernel had
		// not released (Wait's), which a lazy unmount would hide.
		return err
	}
	a.log.Info("unmount failed; detaching lazily", "dir", srv.Dir(), "err", err)
	if err := srv.UnmountLazy(); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "aiodio: %s is busy: detached it; waiting for its last user to close (signal again to stop now)\n", srv.Dir())
	select {
	case err := <-done:
		return err
	case <-more:
		return fmt.Errorf("stopped while %s was still in use: its remaining users get errors", srv.Dir())
	}
}
