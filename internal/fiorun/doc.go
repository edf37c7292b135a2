// Package fiorun runs fio (https://github.com/axboe/fio) as the reference
// for aiodio's benchmarks and parses its JSON report.
//
// Role: DESIGN §8 says every speed claim compares aiodio with fio on the same
// backing file in the same run. `aiodio bench device` and `aiodio bench file`
// both call Run right after their own workload with the same block size,
// queue depth, access pattern and duration.
//
// It owns nothing but the fio child process of one Run call, which is killed
// when the context ends and always waited for.
//
// Invariants: a missing fio binary is a clear error (ErrNoFio, matched with
// errors.Is), never a zero result; a report without the job's figures is an
// error; latencies are fio's total latency percentiles (submission to
// completion, lat_percentiles=1), falling back to completion latency (clat)
// for reports that lack them.
package fiorun
