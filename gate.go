package aiodio

import "sync/atomic"

// gate counts the calls in progress on an object (a Volume or a File) and
// lets Close shut the door and wait for the ones inside: the analogue of a
// percpu_ref kill + wait. enter and exit are one atomic operation each and
// allocate nothing.
type gate struct {
	// state: the number of calls inside, plus gateClosed once closed.
	state atomic.Int64
	// done is closed when the gate is closed and empty.
	done chan struct{}
}

const gateClosed = 1 << 62

func newGate() gate { return gate{done: make(chan struct{})} }

// enter admits one call; false once the gate is closed.
func (g *gate) enter() bool {
	for {
		s := g.state.Load()
		if s&gateClosed != 0 {
			return false
		}
		if g.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// exit ends a call admitted by enter.
func (g *gate) exit() {
	if g.state.Add(-1) == gateClosed {
		close(g.done)
	}
}

// close shuts the gate and waits until every admitted call has exited. It
// reports whether this call closed it (false: it was closed already; the
// caller still returns only once the gate is empty).
func (g *gate) close() bool {
	old := g.state.Or(gateClosed)
	if old&gateClosed == 0 && old == 0 {
		close(g.done)
	}
	<-g.done
	return old&gateClosed == 0
}
