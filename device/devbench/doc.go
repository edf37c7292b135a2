// Package devbench drives a device.Device with a fixed workload and measures
// it: the engine of `aiodio bench device` and of the Go benchmarks.
//
// Run keeps Workload.QueueDepth requests in flight: each request is
// resubmitted from its own Done callback, so the measured path is exactly the
// engine's submit/complete path, with no goroutine or channel hop of the
// driver's own and no allocation per operation (requests, buffers, random
// generators and the latency histogram are set up before the clock starts).
// Latencies go into a log-linear histogram (16 sub-buckets per power of two,
// about 6% resolution) from which P50 and P99 are read.
//
// Timing figures are reported, never asserted.
package devbench
