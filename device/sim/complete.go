package sim

import (
	"time"

	"github.com/aiodio/aiodio/device"
)

// run is a completer goroutine, owned by the Device and stopped by Close.
// It picks one ready request at a time, moves its data under d.mu, then calls
// Done without any lock held.
func (d *Device) run() {
	defer d.completers.Done()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		d.mu.Lock()
		if c := d.mu.crashAt; c != nil && d.mu.cseq >= c.at {
			d.mu.crashAt = nil
			img := d.crashLocked(c.o)
			d.mu.Unlock()
			c.ch <- d.reopen(img)
			continue
		}
		p, wait := d.nextLocked(time.Now())
		if p == nil {
			d.mu.Unlock()
			var tc <-chan time.Time
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				tc = timer.C
			}
			select {
			case <-d.kick:
			case <-tc:
			case <-d.stop:
				return
			}
			continue
		}
		d.transferLocked(p)
		more := len(d.mu.ready) > 0
		d.mu.Unlock()
		if more && d.opts.Completers > 1 {
			d.kickCompleter() // let another completer take the next one
		}

		r := p.Req
		r.N, r.Err = p.n, p.err
		r.Done(r)
		// r belongs to the caller again: never touch it below.

		d.mu.Lock()
		d.mu.outstanding--
		close(p.completed)
		d.changedLocked()
		d.mu.Unlock()
	}
}

// nextLocked removes and returns the next request to complete, or nil and
// how long until a waiting request becomes due (0: nothing is waiting).
// REQUIRES: d.mu held.
func (d *Device) nextLocked(now time.Time) (*Pending, time.Duration) {
	m := &d.mu
	if len(m.waiting) > 0 {
		kept := m.waiting[:0]
		for _, p := range m.waiting {
			if !p.due.After(now) {
				p.state = stateReady
				m.ready = append(m.ready, p)
			} else {
				kept = append(kept, p)
			}
		}
		clear(m.waiting[len(kept):])
		m.waiting = kept
	}
	if len(m.ready) == 0 {
		var wait time.Duration
		for _, p := range m.waiting {
			if w := p.due.Sub(now); wait == 0 || w < wait {
				wait = w
			}
		}
		if len(m.waiting) > 0 && wait <= 0 {
			wait = time.Nanosecond
		}
		return nil, wait
	}
	i := 0
	if d.opts.Ordered {
		for j, p := range m.ready {
			if p.Seq < m.ready[i].Seq {
				i = j
			}
		}
	} else if len(m.ready) > 1 {
		i = m.rng.IntN(len(m.ready))
	}
	p := m.ready[i]
	m.ready = removeAt(m.ready, i)
	return p, 0
}

// removeAt removes s[i] keeping the order of the rest.
func removeAt(s []*Pending, i int) []*Pending {
	copy(s[i:], s[i+1:])
	s[len(s)-1] = nil
	return s[:len(s)-1]
}

// transferLocked completes p's data movement: the moment a real device's DMA
// happens. It sets p.n and records the completion.
// REQUIRES: d.mu held.
func (d *Device) transferLocked(p *Pending) {
	m := &d.mu
	r := p.Req
	delete(m.active, r)
	m.inFlight--
	m.cseq++
	p.state = stateDone
	p.cseq = m.cseq
	if p.err == nil {
		switch p.Kind {
		case device.Read:
			off := p.Off
			forEachBuf(r, func(b []byte) {
				m.medium.readAt(b, off)
				off += int64(len(b))
			})
			p.n = p.Len
			m.stats.Reads++
			m.stats.BytesRead += uint64(p.Len)
		case device.Write:
			off := p.Off
			forEachBuf(r, func(b []byte) {
				m.medium.writeAt(b, off)
				if d.opts.WriteThrough {
					m.durable.writeAt(b, off)
				}
				off += int64(len(b))
			})
			m.wseq++
			if !d.opts.WriteThrough && p.Len > 0 {
				data := make([]byte, p.Len)
				m.medium.readAt(data, p.Off)
				m.cache = append(m.cache, cacheEntry{off: p.Off, wseq: m.wseq, seq: p.Seq, data: data})
			}
			p.n = p.Len
			m.stats.Writes++
			m.stats.BytesWritten += uint64(p.Len)
		case device.Flush:
			d.flushLocked(p.flushUpTo)
			m.stats.Flushes++
		}
	} else {
		m.stats.Errors++
		if p.Kind == device.Read && len(d.opts.Scribble) > 0 {
			forEachBuf(r, func(b []byte) { fillPattern(b, d.opts.Scribble) })
		}
	}
	m.stats.Completed++
	if d.opts.LogLimit > 0 {
		if len(m.log) >= d.opts.LogLimit {
			n := copy(m.log, m.log[len(m.log)/2:])
			clear(m.log[n:])
			m.log = m.log[:n]
		}
		m.log = append(m.log, LogEntry{
			Kind: p.Kind, Off: p.Off, Len: p.Len,
			SubmitSeq: p.Seq, CompleteSeq: p.cseq, Err: p.err,
		})
	}
}

// flushLocked makes durable every cached write whose completion number is
// at most upTo, i.e. every write that completed before the flush was
// submitted.
// REQUIRES: d.mu held.
func (d *Device) flushLocked(upTo uint64) {
	m := &d.mu
	kept := m.cache[:0]
	for _, e := range m.cache {
		if e.wseq <= upTo {
			m.durable.writeAt(e.data, e.off)
		} else {
			kept = append(kept, e)
		}
	}
	clear(m.cache[len(kept):])
	m.cache = kept
}

func forEachBuf(r *device.Request, f func([]byte)) {
	if r.Bufs == nil {
		f(r.Buf)
		return
	}
	for _, b := range r.Bufs {
		f(b)
	}
}

// fillPattern fills b with pat repeated back to back (pat non-empty).
func fillPattern(b, pat []byte) {
	n := copy(b, pat)
	for n < len(b) {
		n += copy(b[n:], b[:n])
	}
}
