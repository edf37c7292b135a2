package meta

import (
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestNamespacePOSIX walks the POSIX cases of the namespace contract: each
// call's success or errno, then the resulting tree.
func TestNamespacePOSIX(t *testing.T) {
	f, _ := newFS(t, 8<<20, MkfsOptions{})
	_, err := f.Mkdir("a", 0o755)
	must(t, err)
	_, err = f.Mkdir("a/b", 0o700)
	must(t, err)
	ino, created, err := f.Create("a/b/file", 0o644, false)
	must(t, err)
	if !created {
		t.Fatal("not created")
	}
	ino2, created, err := f.Create("a/b/file", 0o600, false)
	if err != nil || created || ino2 != ino {
		t.Fatalf("reopen: %v %v %v", ino2, created, err)
	}
	_, _, err = f.Create("a/b/file", 0o600, true)
	wantErr(t, err, syscall.EEXIST, "create excl")
	_, _, err = f.Create("a/b", 0o600, false)
	wantErr(t, err, syscall.EISDIR, "create over dir")
	_, _, err = f.Create("nope/x", 0o600, false)
	wantErr(t, err, syscall.ENOENT, "create in missing dir")
	_, _, err = f.Create("a/b/file/x", 0o600, false)
	wantErr(t, err, syscall.ENOTDIR, "path through a file")
	_, err = f.Lookup("a/b/file/x")
	wantErr(t, err, syscall.ENOTDIR, "lookup through a file")
	_, err = f.Mkdir("a", 0o755)
	wantErr(t, err, syscall.EEXIST, "mkdir existing")
	_, err = f.Mkdir(".", 0o755)
	wantErr(t, err, syscall.EEXIST, "mkdir root")

	wantErr(t, f.Rmdir("a"), syscall.ENOTEMPTY, "rmdir non-empty")
	wantErr(t, f.Rmdir("a/b/file"), syscall.ENOTDIR, "rmdir file")
	wantErr(t, f.Unlink("a/b"), syscall.EISDIR, "unlink dir")
	wantErr(t, f.Unlink("a/zz"), syscall.ENOENT, "unlink missing")
	wantErr(t, f.Remove("."), syscall.EBUSY, "remove root")

	// Rename into its own subtree.
	wantErr(t, f.Rename("a", "a/b/c"), syscall.EINVAL, "rename into subtree")
	wantErr(t, f.Rename("a", "a/c"), syscall.EINVAL, "rename into child")
	wantErr(t, f.Rename(".", "x"), syscall.EBUSY, "rename root")
	// File over dir and dir over file.
	_, _, err = f.Create("f2", 0o644, false)
	must(t, err)
	wantErr(t, f.Rename("f2", "a"), syscall.EISDIR, "file over dir")
	wantErr(t, f.Rename("a", "f2"), syscall.ENOTDIR, "dir over file")
	_, err = f.Mkdir("e", 0o755)
	must(t, err)
	wantErr(t, f.Rename("e", "a"), syscall.ENOTEMPTY, "dir over non-empty dir")
	// Dir over empty dir: allowed, and link counts follow.
	must(t, f.Rename("a/b", "e"))
	root, _ := f.Stat(".")
	a, _ := f.Stat("a")
	if root.Nlink != 4 || a.Nlink != 2 { // root: ., a, e ; a: no subdirs left
		t.Fatalf("nlink root %d a %d", root.Nlink, a.Nlink)
	}
	if _, err := f.Lookup("e/file"); err != nil {
		t.Fatal(err)
	}
	// File over file replaces it, the old inode is gone.
	old, _ := f.Lookup("f2")
	must(t, f.Rename("e/file", "f2"))
	if got, _ := f.Lookup("f2"); got != ino {
		t.Fatalf("f2 is %d, want %d", got, ino)
	}
	if _, err := f.Attr(old); err == nil {
		t.Fatal("replaced inode still alive")
	}
	must(t, f.Rename("f2", "f2")) // same name: no-op
	wantErr(t, f.Rename("missing", "x"), syscall.ENOENT, "rename missing")

	ents, err := f.ReadDir(".")
	must(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "a,e,f2" {
		t.Fatalf("readdir: %v", names)
	}
	if !ents[0].Mode.IsDir() || ents[2].Mode.IsDir() {
		t.Fatalf("modes %v", ents)
	}
	_, err = f.ReadDir("f2")
	wantErr(t, err, syscall.ENOTDIR, "readdir file")
	must(t, f.Unlink("f2"))
	must(t, f.Rmdir("e"))
	must(t, f.Remove("a"))
	ents, _ = f.ReadDir(".")
	if len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
	must(t, f.Commit())
}

// TestBadNames checks that invalid names fail with the right errno and
// change nothing.
func TestBadNames(t *testing.T) {
	f, _ := newFS(t, 8<<20, MkfsOptions{})
	long := strings.Repeat("x", 256)
	cases := map[string]syscall.Errno{
		"":                               syscall.EINVAL,
		"/abs":                           syscall.EINVAL,
		"a/":                             syscall.EINVAL,
		"a//b":                           syscall.EINVAL,
		"..":                             syscall.EINVAL,
		"a/../b":                         syscall.EINVAL,
		"./a":                            syscall.EINVAL,
		"nul\x00x":                       syscall.EINVAL,
		long:                             syscall.ENAMETOOLONG,
		"d/" + long:                      syscall.ENAMETOOLONG,
		strings.Repeat("a/", 2100) + "b": syscall.ENAMETOOLONG,
	}
	for name, want := range cases {
		_, _, err := f.Create(name, 0o644, false)
		wantErr(t, err, want, "create "+name[:min(len(name), 20)])
		_, err = f.Mkdir(name, 0o755)
		wantErr(t, err, want, "mkdir")
		wantErr(t, f.Rename(name, "ok"), want, "rename from")
		var pe *fs.PathError
		_, err = f.Lookup(name)
		if !errorsAs(err, &pe) {
			t.Fatalf("lookup error %T is not a *fs.PathError", err)
		}
	}
	if _, _, err := f.Create(strings.Repeat("y", 255), 0o644, true); err != nil {
		t.Fatalf("255-byte name: %v", err)
	}
	ents, _ := f.ReadDir(".")
	if len(ents) != 1 {
		t.Fatalf("entries: %v", ents)
	}
}
