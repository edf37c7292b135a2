// Package alignbuf allocates memory that direct I/O accepts.
//
// Role: Alloc returns page-aligned byte slices that live on the Go heap and are
// collected by the GC like any slice (it over-allocates by one page and slices
// at the first aligned address; the slice keeps the whole backing array alive).
// Pool keeps such buffers by power-of-two size class for an engine's bounce
// buffers, so the steady state allocates nothing.
//
// Invariants: every slice returned by Alloc or Pool.Get starts on a PageSize
// boundary and has len == cap == the requested length (appending to it never
// writes outside it). Pool.Put ignores buffers it did not hand out (wrong
// capacity or misaligned), so a bad Put cannot make a later Get misaligned.
package alignbuf
