package check

import (
	"context"
	"fmt"
	"syscall"

	"github.com/aiodio/aiodio"
)

// NewAsync returns an aiodio.Ring of the volume with room for entries ops.
func (t *VolumeTarget) NewAsync(entries int) (Async, error) {
	r, err := t.Volume().NewRing(entries)
	if err != nil {
		return nil, err
	}
	return &ringAsync{r: r}, nil
}

// ringAsync adapts an aiodio.Ring to Async. Like the Ring it is safe for
// concurrent use: it keeps no scratch state (each call converts into its own
// slices).
type ringAsync struct {
	r *aiodio.Ring
}

func (a *ringAsync) Submit(ops ...Op) (int, error) {
	conv := make([]aiodio.Op, 0, len(ops))
	for i, op := range ops {
		f, ok := op.File.(*aiodio.File)
		if !ok || op.Code < OpRead || op.Code > OpFsync {
			if i == 0 {
				return 0, fmt.Errorf("submit: op not for an aiodio file: %w", syscall.EINVAL)
			}
			break
		}
		conv = append(conv, aiodio.Op{Code: op.Code, File: f, Buf: op.Buf, Off: op.Off, Flags: op.Flags, UserData: op.UserData})
	}
	return a.r.Submit(conv...)
}

func (a *ringAsync) Wait(ctx context.Context, min int, out []Completion) (int, error) {
	c := make([]aiodio.Completion, len(out))
	n, err := a.r.Wait(ctx, min, c)
	for i := 0; i < n; i++ {
		out[i] = Completion{UserData: c[i].UserData, N: c[i].N, Err: c[i].Err}
	}
	return n, err
}

func (a *ringAsync) Close() error { return a.r.Close() }
