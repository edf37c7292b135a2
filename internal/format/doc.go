// Package format defines aiodio's on-device structures and their encodings:
// the superblock, journal chunks and the logical records they carry, and the
// checkpoint (a full image of the metadata). It owns byte layout, checksums
// (crc32c, Castagnoli) and versioning; it knows nothing of devices or locks.
//
// # Layout of a volume (units: blocks of Superblock.BlockSize bytes)
//
//	block 0                 superblock copy 0
//	block 1                 superblock copy 1 (identical content, written after copy 0)
//	JournalStart..+JournalBlocks        journal (linear per epoch, see below)
//	CheckpointStart[0]..+CheckpointBlocks  checkpoint slot 0
//	CheckpointStart[1]..+CheckpointBlocks  checkpoint slot 1
//	DataStart..+DataBlocks  data area (never zeroed by mkfs)
//
// # Superblock
//
// SuperblockSize (512) bytes at the start of its block, little-endian, ending
// with a crc32c of everything before it. It names the active checkpoint slot,
// the checkpoint's epoch, length and crc. Both copies are rewritten at every
// checkpoint (copy 0, flush, copy 1, flush), so a torn or flipped copy is
// recovered from the other one; mount takes the valid copy with the highest Seq.
//
// # Journal
//
// The journal is a sequence of chunks written back to back from JournalStart.
// Each group commit writes exactly one chunk: a ChunkHeaderSize header at the
// start of its first block (magic, epoch, sequence number, block count,
// payload length, record count, crc32c of the payload, crc32c of the header)
// followed by the payload: concatenated records. A chunk of epoch E is valid
// only when its epoch equals the superblock's checkpoint epoch and its
// sequence number is the next expected one (1, 2, ...); replay stops at the
// first chunk that fails any check. Because one chunk is written per commit and
// the next commit starts only after the previous chunk was flushed, a torn
// chunk is always the last one; a checkpoint starts a new epoch so every older
// chunk becomes invalid without being erased.
//
// # Checkpoint
//
// A checkpoint is a CheckpointHeaderSize header in the first block of a slot
// followed by a varint-encoded payload: every inode in ascending Ino order
// with its attributes, its extents (delta-encoded) or its directory entries.
// The header carries the payload length and crc32c, and the superblock repeats
// both, so a checkpoint is only used when both agree.
//
// # Checksums
//
// Every metadata object (superblock copy, journal chunk, checkpoint) is covered
// by crc32c over all the blocks it occupies; one flipped byte anywhere in it
// makes it invalid. Decoders never panic and never allocate more than the
// input can describe: every count is bounded by the bytes that remain.
//
// The numeric constants in this package (magic numbers, record types, field
// order, State values) are stored on devices: they must not be changed,
// although new ones may be added with a new Version.
package format
