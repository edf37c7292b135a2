// Package bugrepro holds minimal reproductions of engine bugs found by the
// check stress suite, one test each, built on the smallest layer that shows
// the bug (so they build even while the upper layers are being changed).
// Each is recorded in /work/plan/ISSUES-from-check.md and passes once the
// bug is fixed.
package bugrepro
