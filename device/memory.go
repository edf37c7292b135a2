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
		data: make([]byte, size),
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

type memDevice struct {
	info Info
	// mu protects the contents of data: reads share it, writes hold it
	// exclusively (concurrent overlapping requests are the caller's race,
	// not a data race here).
	mu    sync.RWMutex
	data  []byte
	queue *queue
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
	switch r.Kind {
	case Flush:
		r.N, r.Err = 0, nil
	case Read:
		m.mu.RLock()
		r.N = m.xfer(r, false)
		m.mu.RUnlock()
		r.Err = nil
	case Write:
		m.mu.Lock()
		r.N = m.xfer(r, true)
		m.mu.Unlock()
		r.Err = nil
	}
}

func (m *memDevice) xfer(r *Request, write bool) int {
	off := r.Off
	do := func(b []byte) {
		if write {
			copy(m.data[off:], b)
		} else {
			copy(b, m.data[off:])
		}
		off += int64(len(b))
	}
	if r.Bufs == nil {
		do(r.Buf)
	} else {
		for _, b := range r.Bufs {
			do(b)
		}
	}
	return int(off - r.Off)
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
