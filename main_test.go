package aiodio

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// Volume, Ring, device and cache must stop what it started (I9).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
