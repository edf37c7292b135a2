package alignbuf

import (
	"sync"
	"testing"
)

func TestAllocAligned(t *testing.T) {
	for _, n := range []int{1, 511, 512, 4095, 4096, 4097, 1 << 20, 3<<20 + 7} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		if !IsAligned(b, PageSize) {
			t.Fatalf("Alloc(%d) not page aligned", n)
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d) not zeroed at %d", n, i)
			}
		}
	}
	if b := Alloc(0); b == nil || len(b) != 0 {
		t.Fatalf("Alloc(0) = %v", b)
	}
	if b := Alloc(-1); b != nil {
		t.Fatalf("Alloc(-1) = %v", b)
	}
}

func TestIsAligned(t *testing.T) {
	b := Alloc(8192)
	if !IsAligned(b, 4096) || !IsAligned(b, 512) {
		t.Fatal("aligned buffer reported misaligned")
	}
	if IsAligned(b[1:], 512) || IsAligned(b[512:], 4096) {
		t.Fatal("misaligned buffer reported aligned")
	}
	if !IsAligned(b[512:], 512) {
		t.Fatal("512-aligned reported misaligned")
	}
	if IsAligned(b, 3) || IsAligned(b, 0) || IsAligned(b, -4) {
		t.Fatal("bad align accepted")
	}
	if !IsAligned(nil, 4096) {
		t.Fatal("empty slice must be aligned")
	}
}

func TestPool(t *testing.T) {
	var p Pool
	for _, n := range []int{1, 4096, 4097, 65536, 1 << 20, 100 << 20} {
		b := p.Get(n)
		if len(b) != n || !IsAligned(b, PageSize) {
			t.Fatalf("Get(%d): len %d aligned %v", n, len(b), IsAligned(b, PageSize))
		}
		p.Put(b)
	}
	// Foreign buffers are ignored, never handed out misaligned.
	raw := make([]byte, 8192+1)
	p.Put(raw[1:])
	p.Put(make([]byte, 5000))
	for i := 0; i < 100; i++ {
		if b := p.Get(8192); !IsAligned(b, PageSize) || len(b) != 8192 {
			t.Fatal("pool handed out a bad buffer")
		}
	}
	if b := p.Get(0); len(b) != 0 {
		t.Fatal("Get(0) not empty")
	}
}

func TestPoolConcurrent(t *testing.T) {
	var p Pool
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				n := 1 + (i*g*977)%200000
				b := p.Get(n)
				if len(b) != n || !IsAligned(b, PageSize) {
					t.Errorf("bad buffer")
					return
				}
				b[0], b[n-1] = byte(g), byte(g)
				p.Put(b)
			}
		}(g)
	}
	wg.Wait()
}

func TestPoolNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items on purpose under -race")
	}
	var p Pool
	p.Put(p.Get(4096))
	a := testing.AllocsPerRun(1000, func() {
		b := p.Get(4096)
		p.Put(b)
	})
	if a > 0.1 {
		t.Fatalf("Get/Put allocates %.2f per op", a)
	}
}
