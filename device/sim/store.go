package sim

import (
	"bytes"
	"maps"
	"slices"
)

// chunkSize is the allocation unit of a store.
const chunkSize = 64 << 10

// store is a sparse byte array of a fixed size. Chunks never written hold
// the background: bg repeated from offset 0 (zeros when bg is nil). A store
// is not safe for concurrent use; the Device guards its stores with d.mu.
type store struct {
	size   int64
	chunks map[int64][]byte // chunk index → chunkSize bytes
	bg     []byte
}

func newStore(size int64) *store {
	return &store{size: size, chunks: make(map[int64][]byte)}
}

// clone returns a deep copy of s.
func (s *store) clone() *store {
	c := &store{size: s.size, chunks: make(map[int64][]byte, len(s.chunks)), bg: s.bg}
	for i, ch := range s.chunks {
		c.chunks[i] = slices.Clone(ch)
	}
	return c
}

// background fills p with the background as it lies at device offset off.
func (s *store) background(p []byte, off int64) {
	if len(s.bg) == 0 {
		clear(p)
		return
	}
	k := int(off % int64(len(s.bg)))
	n := copy(p, s.bg[k:])
	n += copy(p[n:], s.bg[:k])
	for n < len(p) {
		n += copy(p[n:], p[:n])
	}
}

// readAt fills p from offset off; the range must lie inside the store.
func (s *store) readAt(p []byte, off int64) {
	for len(p) > 0 {
		i, o := off/chunkSize, int(off%chunkSize)
		n := min(len(p), chunkSize-o)
		if ch, ok := s.chunks[i]; ok {
			copy(p[:n], ch[o:])
		} else {
			s.background(p[:n], off)
		}
		p, off = p[n:], off+int64(n)
	}
}

// writeAt stores p at offset off; the range must lie inside the store.
func (s *store) writeAt(p []byte, off int64) {
	for len(p) > 0 {
		i, o := off/chunkSize, int(off%chunkSize)
		n := min(len(p), chunkSize-o)
		ch, ok := s.chunks[i]
		if !ok {
			ch = make([]byte, chunkSize)
			if n < chunkSize {
				s.background(ch, i*chunkSize)
			}
			s.chunks[i] = ch
		}
		copy(ch[o:], p[:n])
		p, off = p[n:], off+int64(n)
	}
}

// fill makes the whole store the background pattern (nil: zeros).
func (s *store) fill(pattern []byte) {
	s.bg = nil
	if bytes.ContainsFunc(pattern, func(r rune) bool { return r != 0 }) {
		s.bg = slices.Clone(pattern)
	}
	clear(s.chunks)
}

// bytes materializes the whole store.
func (s *store) bytes() []byte {
	b := make([]byte, s.size)
	s.readAt(b, 0)
	return b
}

// load stores img at offset 0, allocating only chunks that differ from
// the background.
func (s *store) load(img []byte) {
	bg := make([]byte, chunkSize)
	for off := int64(0); off < int64(len(img)); off += chunkSize {
		p := img[off:min(off+chunkSize, int64(len(img)))]
		s.background(bg[:len(p)], off)
		if !bytes.Equal(p, bg[:len(p)]) {
			s.writeAt(p, off)
		}
	}
}

// find returns the offset of the first occurrence of marker (non-empty), or
// -1. It skips runs of unwritten chunks when the background cannot hold
// the marker.
func (s *store) find(marker []byte) int64 {
	if int64(len(marker)) > s.size {
		return -1
	}
	// Can the background alone hold the marker?
	probe := make([]byte, len(marker)+max(len(s.bg), 1)*2)
	s.background(probe, 0)
	bgHas := bytes.Contains(probe, marker)
	tail := len(marker) - 1
	win := make([]byte, 0, tail+chunkSize)
	idx := slices.Sorted(maps.Keys(s.chunks))
	nchunks := (s.size + chunkSize - 1) / chunkSize
	prevPresent := false
	for i := int64(0); i < nchunks; i++ {
		_, present := s.chunks[i]
		if !present && !prevPresent && !bgHas {
			// Background here and just before, which cannot hold the
			// marker: skip to the next written chunk, whose window
			// includes the background tail before it.
			j, _ := slices.BinarySearch(idx, i)
			if j == len(idx) {
				break
			}
			i = idx[j] - 1
			continue
		}
		start := i * chunkSize
		n := min(chunkSize, s.size-start)
		lead := min(int64(tail), start)
		win = win[:lead+n]
		s.readAt(win, start-lead)
		if k := bytes.Index(win, marker); k >= 0 {
			return start - lead + int64(k)
		}
		prevPresent = present
	}
	return -1
}
