package uring

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes (enum io_uring_op).
const (
	OpNop        = 0
	OpReadv      = 1
	OpWritev     = 2
	OpFsync      = 3
	OpReadFixed  = 4
	OpWriteFixed = 5
	OpRead       = 22
	OpWrite      = 23
)

// FsyncDatasync is the fsync_flags value for fdatasync semantics.
const FsyncDatasync = 1

// Setup flags.
const (
	SetupClamp        = 1 << 4
	SetupSubmitAll    = 1 << 7
	SetupCoopTaskrun  = 1 << 8
	SetupTaskrunFlag  = 1 << 9
	SetupSingleIssuer = 1 << 12
)

// Features.
const (
	FeatSingleMmap = 1 << 0
	FeatNodrop     = 1 << 1
)

// SQE flags (SQE.Flags).
const (
	// SQEAsync (IOSQE_ASYNC) sends the operation straight to io-wq
	// without a non-blocking attempt; io-wq may then start another
	// worker for it instead of queueing it behind a busy one.
	SQEAsync = 1 << 4
)

// Enter flags.
const (
	EnterGetevents = 1 << 0
)

// SQ ring flags.
const (
	SQNeedWakeup = 1 << 0
	SQCQOverflow = 1 << 1
	SQTaskrun    = 1 << 2
)

// mmap offsets.
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// SQOffsets is struct io_sqring_offsets.
type SQOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

// CQOffsets is struct io_cqring_offsets.
type CQOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// Params is struct io_uring_params (120 bytes).
type Params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFd         uint32
	Resv         [3]uint32
	SQOff        SQOffsets
	CQOff        CQOffsets
}

// SQE is struct io_uring_sqe (64 bytes).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IoPrio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, fsync_flags, ...
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe (16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

var (
	_ [120]byte = [unsafe.Sizeof(Params{})]byte{}
	_ [64]byte  = [unsafe.Sizeof(SQE{})]byte{}
	_ [16]byte  = [unsafe.Sizeof(CQE{})]byte{}
)

func setup(entries uint32, p *Params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// enter calls io_uring_enter; it may block (GETEVENTS), so it goes through
// Syscall6, which tells the Go scheduler.
func enter(fd int, toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	return int(n), errno
}

// Probe reports whether io_uring_setup works here (nil) or why not (the
// errno: ENOSYS without kernel support, EPERM under seccomp or the
// kernel.io_uring_disabled sysctl).
func Probe() error {
	var p Params
	fd, err := setup(2, &p)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}
