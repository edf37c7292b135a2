// Package devicetest is the conformance suite every device.Device backend
// passes: the memory device, the io_uring and thread-pool engines on image
// files and block devices, and the simulated device.
//
// Run(t, open) checks: Info sanity; read after write (single and vectored,
// with different buffer splits on each side); Flush; many concurrent
// submitters; misaligned buffer address, offset and length rejected by Submit
// with EINVAL naming the required alignment (and never completed); requests
// past the end, negative offsets, over MaxIO and malformed requests rejected
// with EINVAL; a partly rejected batch; Submit after Close fails with EBADF;
// Close drains (every accepted Done has run when Close returns) and leaves no
// goroutine behind (goleak); a Done callback may Submit again.
//
// RunWith(t, open, Options{InjectEIO: ...}) additionally checks that an
// injected EIO reaches exactly the request that hit it; the injection itself
// belongs to the backend under test (device/sim offers it).
//
// The suite never asserts timings. Each subtest opens a fresh device with
// open and closes it itself (Close is idempotent, so open may also register a
// t.Cleanup that closes it).
package devicetest
