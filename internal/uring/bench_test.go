package uring

import (
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkNopQD32 measures the binding alone: 32 NOPs kept in flight, each
// resubmitted from its completion callback on the reaper.
func BenchmarkNopQD32(b *testing.B) { benchNop(b, false) }

// BenchmarkNopQD32Doorbell: the same through a doorbell queue.
func BenchmarkNopQD32Doorbell(b *testing.B) { benchNop(b, true) }

func benchNop(b *testing.B, doorbell bool) {
	needUring(b)
	var q *Queue
	var left atomic.Int64
	var wg sync.WaitGroup
	left.Store(int64(b.N))
	complete := func(ud uint64, res int32) {
		if left.Add(-1) < 0 {
			wg.Done()
			return
		}
		q.Lock()
		e := q.SQE()
		e.Opcode, e.UserData = OpNop, ud
		q.Commit()
	}
	q, err := NewQueue(64, complete, QueueOptions{Doorbell: doorbell})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.ReportAllocs()
	b.ResetTimer()
	wg.Add(32)
	q.Lock()
	for i := 0; i < 32; i++ {
		e := q.SQE()
		e.Opcode, e.UserData = OpNop, uint64(i)
	}
	q.Commit()
	wg.Wait()
}
