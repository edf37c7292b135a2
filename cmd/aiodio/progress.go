package main

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows how far a phase is: a bar on a terminal, otherwise one
// line per second on stderr. A timed phase runs for a duration and counts
// ops; a counted phase goes from 0 to max. It is used from one goroutine.
type progress struct {
	a        *app
	label    string
	timed    bool
	total    time.Duration // timed phases
	max      int64         // counted phases
	bar      *progressbar.ProgressBar
	start    time.Time
	lastLine time.Time
}

// newTimedProgress is a progress for a phase that runs for total.
func newTimedProgress(a *app, label string, total time.Duration) *progress {
	return newProgress(a, label, true, total, int64(total/time.Millisecond))
}

// newCountProgress is a progress for a phase of max steps.
func newCountProgress(a *app, label string, max int64) *progress {
	return newProgress(a, label, false, 0, max)
}

func newProgress(a *app, label string, timed bool, total time.Duration, max int64) *progress {
	p := &progress{a: a, label: label, timed: timed, total: total, max: max, start: time.Now()}
	p.lastLine = p.start
	if a.tty {
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription(label),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// update reports n: ops done (timed) or steps done (counted).
func (p *progress) update(n int64) {
	el := time.Since(p.start)
	if p.bar != nil {
		if p.timed {
			p.bar.Describe(fmt.Sprintf("%-18s %10d ops", p.label, n))
			_ = p.bar.Set64(int64(min(el, p.total) / time.Millisecond))
		} else {
			_ = p.bar.Set64(min(n, p.max))
		}
		return
	}
	if time.Since(p.lastLine) < time.Second {
		return
	}
	p.lastLine = time.Now()
	if p.timed {
		fmt.Fprintf(p.a.stderr, "%s: %.1fs/%gs, %d ops\n", p.label, el.Seconds(), p.total.Seconds(), n)
	} else {
		fmt.Fprintf(p.a.stderr, "%s: %d/%d\n", p.label, n, p.max)
	}
}

func (p *progress) finish(n int64) {
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	if p.timed {
		fmt.Fprintf(p.a.stderr, "%s: done, %d ops in %.1fs\n", p.label, n, time.Since(p.start).Seconds())
	} else {
		fmt.Fprintf(p.a.stderr, "%s: done in %.1fs\n", p.label, time.Since(p.start).Seconds())
	}
}
