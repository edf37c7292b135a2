package device_test

import (
	"bytes"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/devicetest"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

func TestMemoryConformance(t *testing.T) {
	devicetest.Run(t, func(t *testing.T) device.Device {
		return device.NewMemory(8<<20, 512)
	})
}

func TestMemoryConformance4K(t *testing.T) {
	devicetest.Run(t, func(t *testing.T) device.Device {
		return device.NewMemory(8<<20, 4096)
	})
}

func TestNewMemoryBadArgs(t *testing.T) {
	for _, c := range []struct {
		size int64
		ss   int
	}{{-1, 512}, {1000, 0}, {1 << 20, 3000}, {4097, 4096}} {
		d := device.NewMemory(c.size, c.ss)
		in := d.Info()
		if in.LogicalBlockSize < 512 || in.LogicalBlockSize&(in.LogicalBlockSize-1) != 0 || in.Size%int64(in.LogicalBlockSize) != 0 || in.Size < 0 {
			t.Errorf("NewMemory(%d, %d): bad info %+v", c.size, c.ss, in)
		}
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestMemoryHugeSparse(t *testing.T) {
	// 1 TiB costs only what is written.
	devicetest.Run(t, func(t *testing.T) device.Device { return device.NewMemory(1<<40, 4096) })
}

func TestMemoryAcrossChunks(t *testing.T) {
	d := device.NewMemory(4<<20, 512)
	defer d.Close()
	const n = 512 << 10
	want := alignbuf.Alloc(n)
	for i := range want {
		want[i] = byte(i/512 + 1)
	}
	done := make(chan *device.Request, 1)
	off := int64(1<<20 - n/2) // straddles the first 1 MiB chunk boundary
	w := &device.Request{Kind: device.Write, Off: off, Bufs: [][]byte{want[:n/2], want[n/2:]}, Done: func(r *device.Request) { done <- r }}
	if _, err := d.Submit(w); err != nil {
		t.Fatal(err)
	}
	<-done
	got := alignbuf.Alloc(n + 1024)
	r := &device.Request{Kind: device.Read, Off: off - 512, Bufs: [][]byte{got[:n/2], got[n/2:]}, Done: func(r *device.Request) { done <- r }}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	<-done
	if r.Err != nil || r.N != len(got) {
		t.Fatalf("read: %d %v", r.N, r.Err)
	}
	if !bytes.Equal(got[:512], make([]byte, 512)) || !bytes.Equal(got[512:512+n], want) || !bytes.Equal(got[512+n:], make([]byte, 512)) {
		t.Fatal("data across chunk boundaries differs")
	}
}
