package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Required reports whether AIODIO_REQUIRE demands the named requirement.
func Required(what string) bool {
	for _, w := range strings.Split(os.Getenv("AIODIO_REQUIRE"), ",") {
		w = strings.TrimSpace(w)
		if w == "all" || w == what {
			return true
		}
	}
	return false
}

// Need skips the test (or fails it, when AIODIO_REQUIRE demands what) unless ok.
func Need(t testing.TB, what string, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if Required(what) {
		t.Fatalf("requirement %q not met (AIODIO_REQUIRE=%s): %s", what, os.Getenv("AIODIO_REQUIRE"), reason)
	}
	t.Skipf("skipping: needs %s: %s", what, reason)
}

// NeedRoot needs the effective user to be root.
func NeedRoot(t testing.TB) {
	t.Helper()
	Need(t, "root", os.Geteuid() == 0, "not running as root")
}

// NeedCommand needs an executable on PATH and returns its path.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Need(t, name, err == nil, name+" not found on PATH")
	return p
}
