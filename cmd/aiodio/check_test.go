package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckNewImage(t *testing.T) {
	t.Parallel()
	img := filepath.Join(t.TempDir(), "c.img")
	code, stdout, _ := cli(t, "check", img, "--ops", "200", "--size", "16MiB", "--seed", "7")
	if code != exitOK {
		t.Fatalf("check: exit %d", code)
	}
	for _, want := range []string{"poisoned before mkfs", "seed=7", "poison bytes 0", "mismatches 0", "OK: seed 7"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Errorf("the image created for the run was left behind: %v", err)
	}
}

func TestCheckExistingVolumeAndDir(t *testing.T) {
	t.Parallel()
	img := filepath.Join(t.TempDir(), "v.img")
	if code, _, _ := cli(t, "mkfs", img, "--size", "16MiB"); code != exitOK {
		t.Fatal("mkfs failed")
	}
	if code, stdout, _ := cli(t, "check", img, "--ops", "150", "--hole-policy", "fallback"); code != exitOK || !strings.Contains(stdout, "hole=") {
		t.Errorf("check of a volume: exit %d", code)
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("an existing image was removed: %v", err)
	}
	if code, _, _ := cli(t, "fsck", img); code != exitOK {
		t.Errorf("fsck after check: exit %d", code)
	}
	dir := t.TempDir()
	if code, stdout, _ := cli(t, "check", dir, "--ops", "150"); code != exitOK || !strings.Contains(stdout, "kernel directory") {
		t.Errorf("check of a directory: exit %d", code)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("check left files in the directory: %v", ents)
	}
	// The extend-truncate race on the volume: no write lost.
	code, stdout, _ := cli(t, "check", img, "--scenario", "extend-truncate", "--ops", "50")
	if code != exitOK || !strings.Contains(stdout, "0 of 50 completed writes lost") {
		t.Errorf("--scenario extend-truncate on a volume: exit %d: %s", code, stdout)
	}
	code, stdout, _ = cli(t, "check", img, "--scenario", "page-collision", "--ops", "50")
	if code != exitOK || !strings.Contains(stdout, "0 of 50 direct writes lost bytes") {
		t.Errorf("--scenario page-collision on a volume: exit %d: %s", code, stdout)
	}
	// io_uring for the async ops, and an op mix without buffered writes.
	code, stdout, _ = cli(t, "check", dir, "--ops", "150", "--engine", "uring", "--weights", "buf-write=0,async-buf-write=0")
	if code != exitOK || !strings.Contains(stdout, "through io_uring") {
		t.Errorf("check of a directory with io_uring: exit %d", code)
	}
	if strings.Contains(stdout, "buf-write=") || !strings.Contains(stdout, "async-write=") {
		t.Errorf("--weights buf-write=0,async-buf-write=0 not applied: %s", stdout)
	}
}

func TestCheckUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"check"},
		{"check", "a", "b"},
		{"check", filepath.Join(dir, "x.img"), "--size", "1MiB"},
		{"check", dir, "--ops", "0"},
		{"check", dir, "--hole-policy", "bogus"},
		{"check", dir, "--engine", "bogus"},
		{"check", dir, "--max-file-size", "1k"},
		{"check", dir, "--weights", "nosuch=1"},
		{"check", dir, "--weights", "truncate=-1"},
		{"check", dir, "--weights", "truncate"},
		{"check", dir, "--scenario", "nosuch"},
	} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("aiodio %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
