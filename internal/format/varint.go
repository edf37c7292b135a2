package format

import "encoding/binary"

// reader decodes varints from a byte slice; the first failure sticks.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

// nonneg reads a uvarint that must fit in a non-negative int64.
func (r *reader) nonneg() int64 {
	v := r.uvarint()
	if v > 1<<62 {
		r.bad = true
		return 0
	}
	return int64(v)
}

func (r *reader) byte1() byte {
	if r.bad || r.off >= len(r.b) {
		r.bad = true
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) str(max int) string {
	n := r.uvarint()
	if r.bad || n > uint64(max) || n > uint64(len(r.b)-r.off) {
		r.bad = true
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func putStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
