package aiodio

import "github.com/aiodio/aiodio/internal/alignbuf"

// AlignedBuffer returns a zeroed n-byte slice whose first byte is page-aligned
// (4096), so it is safe for direct I/O on any device aiodio opens. It is
// ordinary Go memory, collected by the GC like any slice. n <= 0 returns an
// empty slice.
func AlignedBuffer(n int) []byte {
	if n <= 0 {
		return []byte{}
	}
	return alignbuf.Alloc(n)
}
