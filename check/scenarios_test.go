package check

import (
	"context"
	"testing"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device/sim"
)

// TestExtendTruncateRaceVolume runs ExtendTruncateRace on aiodio volumes
// (sim device with latency, so the write is in flight when the truncate
// comes): no completed write may be lost, with either hole policy.
//
// aiodio has no window for this race at all: raising the size never writes
// zeros past the old end of file (the blocks there are holes or unwritten;
// only the old EOF block's tail is zeroed), and the truncate waits for the
// drain anyway. Checked by hand: giving aiodio's truncate XFS's order —
// sample the size, wait for the drain, then zero [sampled size, new size)
// through the cache — fails it ("200 of 200 ... lost").
func TestExtendTruncateRaceVolume(t *testing.T) {
	raceOnVolumes(t, 3, ExtendTruncateRace, "completed extending writes lost to a truncate that raised the size")
}

// raceOnVolumes runs race 200 times on a poisoned sim volume (seed) with
// each hole policy and fails if any iteration lost data (lostWhat says
// what was lost).
func raceOnVolumes(t *testing.T, seed int64, race func(context.Context, Target, int) (int, error), lostWhat string) {
	for _, hp := range []aiodio.HolePolicy{aiodio.Unwritten, aiodio.BufferedFallback} {
		t.Run(hp.String(), func(t *testing.T) {
			d := newPoisonedSim(t, seed, 200*time.Microsecond, 0)
			tg, err := OpenVolumeSim(d, aiodio.Options{HolePolicy: hp}, sim.CrashOptions{})
			if err != nil {
				t.Fatal(err)
			}
			closeNow := closeAtEnd(t, tg)
			lost, err := race(context.Background(), tg, 200)
			if err != nil {
				t.Fatal(err)
			}
			if lost != 0 {
				t.Fatalf("%d of 200 %s", lost, lostWhat)
			}
			closeNow()
		})
	}
}

// TestPageCollisionRaceVolume runs PageCollisionRace on aiodio volumes: a
// buffered write into a page of an async direct write in flight never
// loses the direct write's other bytes.
//
// Checked by hand: without the wait for direct I/O in flight in aiodio's
// buffered write (inode.writeAt's DIO.Wait) it fails.
func TestPageCollisionRaceVolume(t *testing.T) {
	raceOnVolumes(t, 5, PageCollisionRace, "direct writes lost bytes to a buffered write into the same page")
}
