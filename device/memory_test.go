package device_test

import (
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/devicetest"
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
