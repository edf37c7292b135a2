// Package uring is aiodio's io_uring binding, written directly on
// golang.org/x/sys/unix (no io_uring module is available).
//
// It owns the kernel ABI (Params 120 B, SQE 64 B, CQE 16 B, opcodes, mmap
// offsets; see sys.go), the Ring (setup, single or double mmap of the SQ/CQ
// rings and the SQE array, munmap) and Queue: a Ring made safe for many
// submitting goroutines with one reaper goroutine.
//
// Queue design (the hot path allocates nothing):
//   - Submission (direct mode): a submitter takes the SQ mutex, fills SQEs,
//     publishes the tail and then becomes the "enterer" unless another
//     goroutine already is;
//     the enterer calls io_uring_enter for everything published so far and
//     loops until nothing is left (flat combining), so concurrent submitters
//     share one io_uring_enter.
//   - Completion: one reaper goroutine reaps CQEs and calls the completion
//     function for each, directly (no channel hop). While it does, it holds
//     the enterer role, so submissions made from completion callbacks (the
//     common "keep N in flight" pattern) are only published; the reaper then
//     submits them and waits for the next completion in one
//     io_uring_enter(to_submit, 1, GETEVENTS), called through unix.Syscall6
//     because it blocks.
//   - EINTR is retried; EAGAIN/EBUSY from io_uring_enter (kernel short of
//     memory, or a CQ overflow backlog) make the reaper flush completions and
//     the submission is retried. A CQ overflow flag makes the reaper enter
//     with GETEVENTS to flush the kernel's overflow list (FEAT_NODROP).
//   - Close submits a NOP carrying a stop mark: the reaper exits after
//     reaping it; the rings are unmapped and the fd closed. The caller must
//     have drained its own operations first.
//
// Doorbell mode (QueueOptions.Doorbell; the device engine uses it): only
// the reaper's thread, locked with runtime.LockOSThread, ever calls
// io_uring_enter. Other submitters publish their SQEs and, only when the
// reaper is (about to be) blocked, write an eventfd on which the reaper keeps
// an IORING_OP_READ armed; its completion wakes the reaper, which submits.
// Why: the kernel runs completion task work and attaches io-wq workers to
// the *submitting* thread. With all submissions on one thread that is either
// running the reaper loop or waiting in GETEVENTS, task work runs promptly
// even with IORING_SETUP_COOP_TASKRUN (no IPI per completion; measured here
// it doubles 4 KiB random-read IOPS on a tmpfs image and is neutral on
// ext4), and a single io-wq pool stays warm. Without the doorbell a request
// submitted by a goroutine whose thread then computes in user space could
// wait for that thread's next kernel entry. The cost is one eventfd write
// and a reaper wake-up for a submission that finds the reaper asleep.
//
// A doorbell queue's ring is created on the reaper's thread with
// IORING_SETUP_SINGLE_ISSUER (Linux 6.0; dropped on older kernels): the
// kernel then refuses io_uring_enter and io_uring_register from any other
// thread (EEXIST), so RegisterBuffers and UnregisterBuffers hand their
// system call to the reaper and wait for it. (fio also sets
// IORING_SETUP_DEFER_TASKRUN; measured here it made 4 KiB random I/O on
// ext4 a few per cent slower, so it is not used.)
//
// Caveat: for files whose operations the kernel always punts to io-wq
// (tmpfs), the single submitting thread means a single io-wq, which runs
// non-sleeping work on one worker; the device engine turns the doorbell off
// there and sets SQEAsync (IOSQE_ASYNC) so io-wq may add workers.
//
// Eager mode (QueueOptions.Eager; the device engine uses it with the
// doorbell): the reaper reaps one CQE at a time and, when the callback
// published SQEs (a request finished and the next one took its place), it
// submits them at once with io_uring_enter(n, 0, GETEVENTS) before reaping
// the next CQE; the GETEVENTS runs the completion work the kernel deferred
// to this thread (COOP_TASKRUN), so completions that arrived meanwhile are
// posted and reaped in the same pass. That is fio's pattern (one enter per
// resubmitted request). Batching instead (run every available callback,
// then submit all in one enter) keeps requests that completed together
// together: at a fixed queue depth they are resubmitted as one burst,
// complete as one burst, and the virtual disk here serves such convoys more
// slowly than a steady stream (4 KiB random writes on ext4: eager 1.02-1.41x,
// median 1.3x, in eight alternated pairs; in 30 ABBA-alternated 250 ms
// slices of one process, random writes 1.10-1.12x, random reads 0.99-1.09x,
// sequential 128 KiB 0.99-1.04x). One eager pass reaps at most a CQ's
// worth so that registrations and the doorbell are not starved.
//
// Queue.RegisterBuffers registers fixed buffers for OpReadFixed/OpWriteFixed.
//
// Invariants: the SQ is never overrun (SQE returns nil when full, the caller
// bounds its in-flight count by the ring size, so the CQ cannot overflow
// either); the completion function is called exactly once per CQE, from the
// reaper goroutine only. Buffers named by SQEs are the caller's to keep
// referenced until their completion.
package uring
