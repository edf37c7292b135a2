// Package check is aiodio's exerciser and AIO-DIO race suite (DESIGN §7).
//
// It runs one seeded, randomized, concurrent workload against a Target —
// an aiodio volume (VolumeTarget: files are *aiodio.File, async ops go
// through aiodio.Ring) or a directory of a kernel filesystem (DirTarget:
// open(2) with O_DIRECT, pread/pwrite, fallocate; async ops on goroutines,
// or with DirTarget.URing io_uring requests on the files' descriptors, the
// kernel's asynchronous direct-I/O path) — and verifies every byte read.
// The default kernel run proves the suite itself: a finding there on a
// well-tested filesystem is a bug of the suite. With URing, ext4 shows the
// direct/buffered page collision Linux documents (see DirTarget); aiodio
// does not.
//
// # Workload
//
// N files, each open twice (O_DIRECT and buffered). Ops run in rounds of
// RoundOps ops, all concurrent (Workers goroutines, each with its own async
// queue keeping QueueDepth ops in flight): async direct writes (often
// extending, at or past EOF), async and sync direct and buffered reads and
// writes, async fsync, Stat of the file and of its name, truncates (down and
// up), hole punches, zero-range and KEEP_SIZE preallocation (also past EOF),
// and removing a file while its ops run (they may fail with ESTALE/ENOENT;
// it is recreated after the round, and its freed blocks must never receive
// a late write: that would show as another file's data in the others).
// Between rounds everything is quiescent; every VerifyEvery rounds and at the
// end, every file is synced and read whole. Every RecycleEvery rounds one
// file is removed and created anew, so its freed blocks go to the others.
// At the end a Reopener target is closed (fsck'd) and reopened, and every
// file is read again. The op sequence is a function of Config.Seed alone;
// the interleaving is not.
//
// # Verification (the invariants checked)
//
// Data is self-describing: every write covers whole 16-byte cells, and each
// cell carries (file id, its own offset, the write's generation) and a
// checksum salted with the seed. A file's model maps every cell to the set
// of values it may hold (generations, 0 for zero). A read issued during a
// round may return, for each cell, a value of the model at the round's start
// or the outcome of any op of the round that changes that cell (write: its
// generation; truncate past it, punch, zero-range: zero) — except that once
// such an op has completed successfully before the read was issued, the
// values from before the round are excluded (a completed write, truncate or
// punch is never undone: I1, I5, I7). So each byte read must be zero or a
// valid pattern for exactly that file and offset from a write that was
// issued, and never the poison marker the device was filled with before
// mkfs (I1): poison, data of another file or offset (freed blocks), stale
// generations and torn or unfilled cells are all reported. Sizes seen by
// Stat and by short reads must lie between the sizes the round could
// produce, and, without a concurrent truncate, never behind a completed
// extending write (I8). At each quiescent point the size is observed and
// the model updated (values past EOF become zero); a full verification then
// collapses the model to exactly what was read, which every later read must
// agree with (the sequential oracle). Async queues must complete every
// accepted op exactly once (I2). Rounds that do not finish within
// RoundTimeout are reported as hangs with every goroutine's stack (I9).
//
// On failure, the report gives the seed and, per failure, the short op log:
// up to the failing round, the ops that changed the failing cell (*), the
// other ops and reads of its 4 KiB block, and the other changes of the file
// in the rounds that changed the cell (~).
//
// # Knobs for bug hunting
//
// Config.Weights changes the op mix by kind name (0 disables a kind: e.g.
// all buffered kinds off isolates the direct path); FixedSize presizes the
// files and never truncates (EOF never moves, isolating EOF bugs);
// SharedQueue makes all workers Submit to and Wait on one queue
// concurrently; AlignedDirect keeps direct I/O sector-aligned. The tests
// take -seed (or AIODIO_SEED), -check.ops, -check.weights, -check.fixedsize,
// -check.shared and -check.roundtimeout.
//
// # Targets
//
// A VolumeTarget (OpenVolume, OpenVolumeDevice) is closed, checked with
// aiodio.Fsck and reopened at the end (Reopener), and its live metadata is
// checked with Volume.Fsck (Checker). The stress tests poison the medium
// before mkfs: the image file (TestStressPoisonShm in /dev/shm,
// TestStressPoisonLoop4K through a loop device with 4096-byte sectors) or
// the sim device (TestStressPoisonSim, random completion order and
// latency), each with both hole policies and StrictAlignment off.
// TestStressKernelDir runs the same workload on a kernel directory with
// O_DIRECT (sector-aligned) to prove the suite itself.
//
// TestStressCrashSim (Config.CrashEvery on a Crasher: OpenVolumeSim) cuts
// the power right after the round that follows each Sync: after the
// remount, fsck must be clean and every cell must hold its synced value or
// a value of that round's ops, never stale or poisoned data (I11).
//
// TestStressEIOSim (Config.Faults, ExpectErrors) fails a few device reads
// with EIO in every round: the ops that hit them must fail with the error,
// async ops still complete exactly once, nothing hangs, and every byte read
// still verifies. Async ops also carry RWF_NOWAIT (EAGAIN allowed) and
// RWF_DSYNC (a completed one must survive the next power cut).
//
// Package check/bugrepro holds the minimal reproductions of the engine bugs
// this suite found. The named races ExtendTruncateRace and
// PageCollisionRace (`aiodio check --scenario`) are the reductions of what
// it found on kernel filesystems through io_uring: a truncate raising the
// size over a completed extending write (xfs), and a buffered write into a
// page of a direct write in flight (ext4, xfs). Every target must lose
// nothing in them; aiodio volumes don't.
//
// Entry point: Run(ctx, target, Config) (Report, error); OpenTarget opens a
// directory or a volume for `aiodio check`.
package check
