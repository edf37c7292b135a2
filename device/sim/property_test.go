package sim_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// TestCrashProperty checks the write cache against a model, over random
// batches of overlapping writes (completed in seeded random order), reads,
// flushes and crashes:
//   - reads return what Image shows, and Image is the last completed write
//     of each sector (by the completion log);
//   - a crash image keeps every flushed byte, and each sector of it holds
//     either its durable content or one value written to it since the flush
//     that made it durable, never a mix (block granularity per write is
//     checked by TestCrashSemantics);
//   - with zero CrashOptions the crash image is exactly the durable model.
func TestCrashProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const sectors, ss = 32, 512
		pbs := rapid.SampledFrom([]int{512, 1024, 2048}).Draw(rt, "pbs")
		d := sim.New(sim.Options{Size: sectors * ss, PhysicalBlockSize: pbs,
			Seed: rapid.Int64().Draw(rt, "seed")})
		defer d.Close()
		durable := make([]byte, sectors*ss) // model of the durable image
		visible := make([]byte, sectors*ss) // model of what reads see
		// since[s] is the set of values written to sector s since the
		// last flush that covered it (0 is the initial value).
		since := make([]map[byte]bool, sectors)
		for i := range since {
			since[i] = map[byte]bool{}
		}
		next := byte(1)
		steps := rapid.IntRange(1, 20).Draw(rt, "steps")
		for step := range steps {
			switch rapid.IntRange(0, 3).Draw(rt, fmt.Sprint("op", step)) {
			case 0, 1: // a batch of overlapping writes
				n := rapid.IntRange(1, 6).Draw(rt, "batch")
				var wg sync.WaitGroup
				var reqs []*device.Request
				for range n {
					first := rapid.IntRange(0, sectors-1).Draw(rt, "first")
					cnt := rapid.IntRange(1, min(4, sectors-first)).Draw(rt, "count")
					v := next
					next++
					for s := first; s < first+cnt; s++ {
						since[s][v] = true
					}
					wg.Add(1)
					reqs = append(reqs, &device.Request{Kind: device.Write, Off: int64(first * ss),
						Buf: filled(cnt*ss, v), Done: func(r *device.Request) {
							if r.Err != nil {
								panic(r.Err)
							}
							wg.Done()
						}})
				}
				d.ClearLog()
				base := d.Stats().Submitted
				if _, err := d.Submit(reqs...); err != nil {
					rt.Fatal(err)
				}
				wg.Wait()
				// Apply the writes in the logged completion order.
				for _, e := range d.Log() {
					r := reqs[e.SubmitSeq-base-1]
					if e.Off != r.Off || e.Len != len(r.Buf) {
						rt.Fatalf("log entry %+v does not match its request", e)
					}
					copy(visible[e.Off:], r.Buf)
				}
				if !bytes.Equal(visible, d.Image()) {
					rt.Fatal("Image differs from the writes applied in completion order")
				}
			case 2: // flush: everything completed so far becomes durable
				if _, err := do(t, d, device.Flush, 0, nil); err != nil {
					rt.Fatal(err)
				}
				copy(durable, d.Image())
				for i := range since {
					since[i] = map[byte]bool{}
				}
			case 3: // read everything back
				got := aligned(sectors * ss)
				if _, err := do(t, d, device.Read, 0, got); err != nil {
					rt.Fatal(err)
				}
				if !bytes.Equal(got, d.Image()) {
					rt.Fatal("read differs from Image")
				}
			}
			if !bytes.Equal(d.DurableImage(), durable) {
				rt.Fatalf("durable image differs from the model")
			}
			co := sim.CrashOptions{
				Seed:          rapid.Int64().Draw(rt, "crashSeed"),
				KeepUnflushed: rapid.Float64Range(0, 0.5).Draw(rt, "keep"),
				TearUnflushed: rapid.Float64Range(0, 0.5).Draw(rt, "tear"),
			}
			img := d.CrashImage(co)
			for b := 0; b < sectors*ss; b += pbs {
				for s := b / ss; s < (b+pbs)/ss; s++ {
					sec := img[s*ss : (s+1)*ss]
					v := sec[0]
					if bytes.Count(sec, []byte{v}) != ss {
						rt.Fatalf("sector %d mixes values", s)
					}
					if v != durable[s*ss] && !since[s][v] {
						rt.Fatalf("sector %d holds %d: neither durable (%d) nor written since", s, v, durable[s*ss])
					}
				}
			}
			if !bytes.Equal(d.CrashImage(sim.CrashOptions{Seed: co.Seed}), durable) {
				rt.Fatal("zero CrashOptions must keep exactly the durable image")
			}
		}
	})
}
