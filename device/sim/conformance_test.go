package sim_test

import (
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/devicetest"
	"github.com/aiodio/aiodio/device/sim"
)

// TestConformance runs the device conformance suite over several sim
// configurations (random and submission order, 4 KiB sectors, latency).
func TestConformance(t *testing.T) {
	inject := devicetest.Options{InjectEIO: func(d device.Device, off int64, n int) {
		d.(*sim.Device).FailRange(sim.OpAll, off, int64(n))
	}}
	for _, c := range []struct {
		name string
		o    sim.Options
	}{
		{"random", sim.Options{Size: 1 << 20, Seed: 1}},
		{"ordered", sim.Options{Size: 1 << 20, Ordered: true}},
		{"4k-sectors", sim.Options{Size: 4 << 20, SectorSize: 4096, MemAlign: 4096, MaxIO: 128 << 10, Seed: 2}},
		{"latency", sim.Options{Size: 1 << 20, Seed: 3, Latency: 50 * time.Microsecond, LatencyJitter: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			devicetest.RunWith(t, func(t *testing.T) device.Device { return sim.New(c.o) }, inject)
		})
	}
}
