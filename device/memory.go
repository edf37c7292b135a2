package device

import (
	"fmt"
	"runtime"
	"sync"
)

// NewMemory returns a RAM device of size bytes with the given logical sector
// size. Requests complete on a small pool of engine goroutines (never inline
// in Submit). sectorSize is rounded up to a power of two of at least 512, size
// is rounded down to a multiple of it; a negative size counts as 0.
// MemAlign is 512, like most real disks, so alignment bugs surface here too.
// Memory is allocated in 1 MiB chunks on first write (never-written ranges
// read as zeros), so a large device costs only what is written to it.
func NewMemory(size int64, sectorSize int) Device {
	ss := 512
	for ss < sectorSize && ss < 1<<20 {
		ss <<= 1
	}
	if size < 0 {
		size = 0
	}
	size -= size % int64(ss)
	workers := runtime.GOMAXPROCS(0)
	if workers > 4 {
		workers = 4
	}
	m := &memDevice{
		chunks: make(map[int64][]byte),
		info: Info{
			Size:              size,
			LogicalBlockSize:  ss,
			PhysicalBlockSize: ss,
			MemAlign:          512,
			MaxIO:             1 << 20,
			Engine:            "memory",
		},
		queue: newQueue(workers),
	}
	m.queue.start(m.serve)
	return m
}

const memChunk = 1 << 20

type memDevice struct {
	info Info
	// mu protects chunks and their contents: reads share it, writes hold
	// it exclusively (concurrent overlapping requests are the caller's
	// race, not a data race here).
	mu     sync.RWMutex
	chunks map[int64][]byte // chunk index -> memChunk bytes
	queue  *queue
}

func (m *memDevice) Info() Info { return m.info }

func (m *memDevice) Submit(reqs ...*Request) (int, error) {
	for i, r := range reqs {
		if err := Check(m.info, r); err != nil {
			return i, err
		}
		if !m.queue.push(r) {
			return i, fmt.Errorf("device: memory: submit: %w", ErrClosed)
		}
	}
	return len(reqs), nil
}

func (m *memDevice) serve(r *Request) {
	r.N, r.Err = 0, nil
	switch r.Kind {
	case Read:
		m.mu.RLock()
		r.N = m.xfer(r, false)
		m.mu.RUnlock()
	case Write:
		m.mu.Lock()
		r.N = m.xfer(r, true)
		m.mu.Unlock()
	}
}

func (m *memDevice) xfer(r *Request, write bool) int {
	off := r.Off
	if r.Bufs == nil {
		m.copyAt(r.Buf, off, write)
		return len(r.Buf)
	}
	for _, b := range r.Bufs {
		m.copyAt(b, off, write)
		off += int64(len(b))
	}
	return int(off - r.Off)
}

// copyAt moves b to or from the medium at off, chunk by chunk.
func (m *memDevice) copyAt(b []byte, off int64, write bool) {
	for len(b) > 0 {
		idx, in := off/memChunk, int(off%memChunk)
		n := min(len(b), memChunk-in)
		c := m.chunks[idx]
		switch {
		case write && c == nil:
			c = make([]byte, memChunk)
			m.chunks[idx] = c
			fallthrough
		case write:
			copy(c[in:], b[:n])
		case c == nil:
			clear(b[:n])
		default:
			copy(b[:n], c[in:])
		}
		b, off = b[n:], off+int64(n)
	}
}

func (m *memDevice) Close() error {
	m.queue.close()
	return nil
}

// queue is an unbounded FIFO of requests served by a fixed set of worker
// goroutines. push never blocks, so a Done callback may Submit without
// deadlocking the workers. It is shared by the memory device and the
// thread-pool engine.
type queue struct {
	// mu protects items, head, closed, pending and stopped; cond signals
	// workers (new item or stop) and close (pending reached zero).
	mu      sync.Mutex
	cond    sync.Cond
	items   []*Request // ring buffer, len is a power of two
	head    int        // index of the oldest item
	count   int        // queued, not yet taken by a worker
	pending int        // accepted, Done not yet returned
	closed  bool       // no more pushes
	stopped bool       // workers must exit
	workers int
	wg      sync.WaitGroup
	serve   func(*Request)
}

func newQueue(workers int) *queue {
	if workers < 1 {
		workers = 1
	}
	q := &queue{items: make([]*Request, 256), workers: workers}
	q.cond.L = &q.mu
	return q
}

func (q *queue) start(serve func(*Request)) {
	q.serve = serve
	q.wg.Add(q.workers)
	for i := 0; i < q.workers; i++ {
		go q.work()
	}
}

// push queues r; false after close.
func (q *queue) push(r *Request) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.count == len(q.items) {
		grown := make([]*Request, 2*len(q.items))
		for i := 0; i < q.count; i++ {
			grown[i] = q.items[(q.head+i)&(len(q.items)-1)]
		}
		q.items, q.head = grown, 0
	}
	q.items[(q.head+q.count)&(len(q.items)-1)] = r
	q.count++
	q.pending++
	q.mu.Unlock()
	q.cond.Signal()
	return true
}

func (q *queue) work() {
	defer q.wg.Done()
	q.mu.Lock()
	for {
		for q.count == 0 && !q.stopped {
			q.cond.Wait()
		}
		if q.count == 0 && q.stopped {
			q.mu.Unlock()
			return
		}
		r := q.items[q.head]
		q.items[q.head] = nil
		q.head = (q.head + 1) & (len(q.items) - 1)
		q.count--
		q.mu.Unlock()

		q.serve(r)
		r.Done(r)

		q.mu.Lock()
		q.pending--
		if q.pending == 0 && q.closed {
			q.cond.Broadcast()
		}
	}
}

// close refuses new pushes, waits until every accepted request's Done has
// returned, then stops the workers. Idempotent; concurrent callers all wait.
// It must not be called from a Done callback (it would wait for itself).
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	for q.pending > 0 {
		q.cond.Wait()
	}
	q.stopped = true
	q.mu.Unlock()
	q.cond.Broadcast()
	q.wg.Wait()
}
