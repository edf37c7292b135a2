package sim_test

import (
	"context"
	"fmt"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// Hold a write, show that it has not reached the medium, then release it.
func ExampleDevice_Release() {
	d := sim.New(sim.Options{Size: 1 << 20, Seed: 1})
	defer d.Close()
	d.HoldIf(func(r *device.Request) bool { return r.Kind == device.Write })

	buf := make([]byte, 4096) // 4096-byte Go allocations are 4096-aligned
	buf[0] = 'x'
	done := make(chan error, 1)
	r := &device.Request{Kind: device.Write, Off: 8192, Buf: buf, Done: func(r *device.Request) { done <- r.Err }}
	if _, err := d.Submit(r); err != nil {
		panic(err)
	}
	p, _ := d.WaitFor(context.Background(), func(p *sim.Pending) bool { return p.Overlaps(8192, 4096) })
	fmt.Println("held:", p, "on medium:", d.ReadRaw(8192, 1)[0] == 'x')
	d.Release(p)
	fmt.Println("err:", <-done, "on medium:", d.ReadRaw(8192, 1)[0] == 'x')
	// Output:
	// held: write#1[8192,+4096) on medium: false
	// err: <nil> on medium: true
}

// A completed but unflushed write is lost by a crash that keeps nothing
// volatile; a flushed one survives.
func ExampleDevice_Crash() {
	d := sim.New(sim.Options{Size: 1 << 20})
	defer d.Close()
	write := func(off int64, b byte) {
		buf := make([]byte, 512)
		buf[0] = b
		done := make(chan struct{})
		d.Submit(&device.Request{Kind: device.Write, Off: off, Buf: buf, Done: func(*device.Request) { close(done) }})
		<-done
	}
	write(0, 'a')
	done := make(chan struct{})
	d.Submit(&device.Request{Kind: device.Flush, Done: func(*device.Request) { close(done) }})
	<-done
	write(512, 'b')

	nd := d.Crash(sim.CrashOptions{Seed: 1}) // KeepUnflushed 0: only flushed data survives
	defer nd.Close()
	fmt.Printf("%q %q\n", nd.ReadRaw(0, 1), nd.ReadRaw(512, 1))
	// Output: "a" "\x00"
}
