package main

import (
	"log/slog"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "64M": 64 << 20, "64MiB": 64 << 20, "64mb": 64 << 20, "1G": 1 << 30,
		"1GiB": 1 << 30, "512k": 512 << 10, "2T": 2 << 40, " 8KiB ": 8 << 10,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5G", "G", "99999999999T", "1Q"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{4096: "4KiB", 1 << 30: "1GiB", 1000: "1000", 3 << 20: "3MiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLatHist(t *testing.T) {
	var h latHist
	if h.quantile(0.5) != 0 {
		t.Errorf("empty histogram has a median")
	}
	// 1..1000 µs, one each.
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.0625 || d < -0.0625 {
			t.Errorf("quantile(%v) = %v, want %v ± 6.25%%", c.q, got, c.want)
		}
	}
	// Buckets are monotonic and cover every value.
	for ns := int64(0); ns < 1<<20; ns += 7 {
		b := latBucket(ns)
		if ns < latLower(b) || ns >= latLower(b+1) {
			t.Fatalf("%dns in bucket %d = [%d, %d)", ns, b, latLower(b), latLower(b+1))
		}
	}
	h.add(-1)
	h.add(time.Duration(1<<63 - 1))
}
