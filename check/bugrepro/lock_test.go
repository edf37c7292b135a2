package bugrepro

// Minimal reproductions of lock bugs found by the stress suite (see the
// package doc).

import (
	"context"
	"sync"
	"testing"

	"github.com/aiodio/aiodio/internal/lock"
)

// TestBugInodeLockWaiterReuseRace: lock.Inode.grantLocked reads w.excl after
// `w.ch <- struct{}{}` has handed the waiter to its goroutine, which puts it
// back in the package-wide waiterPool; an acquire on ANOTHER Inode (under
// another mutex) then reuses it and writes w.excl. Run under -race: two
// locks, contended readers and writers on each.
func TestBugInodeLockWaiterReuseRace(t *testing.T) {
	var locks [4]lock.Inode
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			l := &locks[g%4]
			for i := 0; i < 5000; i++ {
				excl := (g+i)%3 == 0
				if err := l.LockMode(ctx, excl, false); err != nil {
					t.Error(err)
					return
				}
				l.UnlockMode(excl)
			}
		}(g)
	}
	wg.Wait()
}
