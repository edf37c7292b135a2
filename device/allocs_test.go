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
