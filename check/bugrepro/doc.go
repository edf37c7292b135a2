// Package bugrepro holds minimal reproductions of engine bugs found by the
// check stress suite, one test each, built on the smallest layer that shows
// the bug (so they build even while the upper layers are being changed).
// Each test's comment tells its bug (what the stress run showed, the cause,
// the fix); each failed before its fix and passes now.
package bugrepro
