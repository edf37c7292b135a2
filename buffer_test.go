package aiodio

import (
	"testing"
	"unsafe"
)

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{1, 4096, 12345, 1 << 20} {
		b := AlignedBuffer(n)
		if len(b) != n {
			t.Fatalf("AlignedBuffer(%d): len %d", n, len(b))
		}
		if uintptr(unsafe.Pointer(&b[0]))%4096 != 0 {
			t.Fatalf("AlignedBuffer(%d) not page aligned", n)
		}
	}
	if b := AlignedBuffer(0); b == nil || len(b) != 0 {
		t.Fatal("AlignedBuffer(0) must be empty, non-nil")
	}
	if b := AlignedBuffer(-5); len(b) != 0 {
		t.Fatal("AlignedBuffer(-5) must be empty")
	}
}
