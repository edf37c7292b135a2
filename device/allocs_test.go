package device_test

import (
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// TestNoAllocsPerOp checks the steady-state submit/complete path of every
// engine allocates nothing (reads, vectored writes, flushes).
func TestNoAllocsPerOp(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	engines := map[string]func(t *testing.T) device.Device{
		"memory":  func(t *testing.T) device.Device { return device.NewMemory(1<<20, 512) },
		"threads": func(t *testing.T) device.Device { return openImage(t, t.TempDir(), "threads") },
		"uring": func(t *testing.T) device.Device {
			needUring(t)
			return openImage(t, t.TempDir(), "uring")
		},
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			d := open(t)
			defer d.Close()
			done := make(chan struct{}, 1)
			cb := func(*device.Request) { done <- struct{}{} }
			rd := &device.Request{Kind: device.Read, Off: 4096, Buf: alignbuf.Alloc(4096), Done: cb}
			wr := &device.Request{Kind: device.Write, Off: 8192, Bufs: [][]byte{alignbuf.Alloc(4096), alignbuf.Alloc(8192)}, Done: cb}
			fl := &device.Request{Kind: device.Flush, Done: cb}
			var one [1]*device.Request
			for _, r := range []*device.Request{rd, wr, fl} {
				one[0] = r
				allocs := testing.AllocsPerRun(200, func() {
					if _, err := d.Submit(one[:]...); err != nil {
						t.Fatal(err)
					}
					<-done
					if r.Err != nil {
						t.Fatal(r.Err)
					}
				})
				if allocs > 0 {
					t.Errorf("%v: %.2f allocations per op, want 0", r.Kind, allocs)
				}
			}
		})
	}
}

// TestZeroLengthAndEmptyVectors: an empty request completes with N=0, and
// empty elements of a vector are skipped.
func TestZeroLengthAndEmptyVectors(t *testing.T) {
	engines := map[string]func(t *testing.T) device.Device{
		"memory":  func(t *testing.T) device.Device { return device.NewMemory(1<<20, 512) },
		"threads": func(t *testing.T) device.Device { return openImage(t, t.TempDir(), "threads") },
		"uring": func(t *testing.T) device.Device {
			needUring(t)
			return openImage(t, t.TempDir(), "uring")
		},
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			d := open(t)
			defer d.Close()
			done := make(chan *device.Request, 1)
			cb := func(r *device.Request) { done <- r }
			data := alignbuf.Alloc(1024)
			for i := range data {
				data[i] = byte(i + 1)
			}
			for _, r := range []*device.Request{
				{Kind: device.Read, Off: 512, Buf: nil, Done: cb},
				{Kind: device.Write, Off: 512, Bufs: [][]byte{}, Done: cb},
				{Kind: device.Write, Off: 512, Bufs: [][]byte{nil, data[:512], {}, data[512:], nil}, Done: cb},
			} {
				if _, err := d.Submit(r); err != nil {
					t.Fatal(err)
				}
				<-done
				if r.Err != nil || r.N != r.Len() {
					t.Fatalf("N=%d err=%v, want %d, nil", r.N, r.Err, r.Len())
				}
			}
			got := alignbuf.Alloc(1024)
			r := &device.Request{Kind: device.Read, Off: 512, Bufs: [][]byte{{}, got}, Done: cb}
			if _, err := d.Submit(r); err != nil {
				t.Fatal(err)
			}
			<-done
			if r.Err != nil || string(got) != string(data) {
				t.Fatalf("read back after a vector with empty elements: err=%v equal=%v", r.Err, string(got) == string(data))
			}
		})
	}
}
