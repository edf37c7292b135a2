package fuse

import "sync"

// inoLocks orders the opens and closes of one inode's volume files.
//
// aiodio's OpenFile reads the file's size from the metadata before it
// waits for a concurrent last Close of the same file to finish; that Close
// writes the cached data back and only then raises the size in the
// metadata, so the open would start from the old size (data written
// through the cache and not yet written back would read as missing). The
// kernel sends RELEASE asynchronously, so "close; open" from one process
// reaches the daemon as a concurrent close and open. Until the volume
// rereads the size after that wait, the mount never lets an open of an
// inode run during a close of it: opens hold the inode's lock shared,
// closes (Release, and the temporary files of truncate-by-name and
// directory fsync) exclusive.
type inoLocks struct {
	// mu protects m.
	mu sync.Mutex
	m  map[uint64]*inoLock
}

// inoLock is one inode's lock with the count of its holders and waiters
// (the entry is dropped at zero).
type inoLock struct {
	rw    sync.RWMutex
	users int // protected by inoLocks.mu
}

// lock takes ino's lock (exclusive or shared) and returns its unlock.
// Lock order: after fsys.namespaceMu, before every volume lock.
func (l *inoLocks) lock(ino uint64, exclusive bool) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[uint64]*inoLock)
	}
	il := l.m[ino]
	if il == nil {
		il = &inoLock{}
		l.m[ino] = il
	}
	il.users++
	l.mu.Unlock()
	if exclusive {
		il.rw.Lock()
	} else {
		il.rw.RLock()
	}
	return func() {
		if exclusive {
			il.rw.Unlock()
		} else {
			il.rw.RUnlock()
		}
		l.mu.Lock()
		il.users--
		if il.users == 0 {
			delete(l.m, ino)
		}
		l.mu.Unlock()
	}
}
