package format

import "encoding/binary"

// Journal chunk constants. Frozen: stored on devices.
const (
	// ChunkMagic opens every journal chunk.
	ChunkMagic = "AIODIOJC"
	// ChunkHeaderSize is the size of a chunk header at the start of its first block.
	ChunkHeaderSize = 64
)

// ChunkHeader describes one journal chunk (one group commit).
type ChunkHeader struct {
	Epoch      uint64 // checkpoint epoch the chunk follows
	Seq        uint64 // 1, 2, ... within the epoch
	Blocks     uint32 // blocks the chunk occupies, header included
	PayloadLen uint32 // bytes of records after the header
	Records    uint32 // number of records in the payload
	PayloadCRC uint32 // crc32c of the payload
}

// ChunkBlocks returns the number of blocks a chunk with payloadLen bytes of records occupies.
func ChunkBlocks(payloadLen, blockSize int) int {
	return (ChunkHeaderSize + payloadLen + blockSize - 1) / blockSize
}

// EncodeChunk writes a chunk (header and payload, zero padded) into buf, which
// must hold ChunkBlocks(len(payload), blockSize)*blockSize bytes; it returns that prefix.
func EncodeChunk(buf []byte, blockSize int, epoch, seq uint64, records int, payload []byte) []byte {
	nb := ChunkBlocks(len(payload), blockSize)
	b := buf[:nb*blockSize]
	h := ChunkHeader{Epoch: epoch, Seq: seq, Blocks: uint32(nb), PayloadLen: uint32(len(payload)),
		Records: uint32(records), PayloadCRC: Checksum(payload)}
	h.encode(b[:ChunkHeaderSize])
	copy(b[ChunkHeaderSize:], payload)
	clear(b[ChunkHeaderSize+len(payload):])
	return b
}

func (h *ChunkHeader) encode(b []byte) {
	clear(b)
	copy(b, ChunkMagic)
	le := binary.LittleEndian
	le.PutUint64(b[8:], h.Epoch)
	le.PutUint64(b[16:], h.Seq)
	le.PutUint32(b[24:], h.Blocks)
	le.PutUint32(b[28:], h.PayloadLen)
	le.PutUint32(b[32:], h.Records)
	le.PutUint32(b[36:], h.PayloadCRC)
	le.PutUint32(b[ChunkHeaderSize-4:], Checksum(b[:ChunkHeaderSize-4]))
}

// DecodeChunkHeader decodes the header at the start of b and checks its own
// crc and that the chunk fits in blockSize-sized blocks as it claims.
func DecodeChunkHeader(b []byte, blockSize int) (ChunkHeader, error) {
	var h ChunkHeader
	if len(b) < ChunkHeaderSize {
		return h, errorf(ErrCorrupt, "journal chunk header truncated")
	}
	if string(b[:8]) != ChunkMagic {
		return h, errorf(ErrCorrupt, "no journal chunk magic")
	}
	le := binary.LittleEndian
	if le.Uint32(b[ChunkHeaderSize-4:]) != Checksum(b[:ChunkHeaderSize-4]) {
		return h, errorf(ErrChecksum, "journal chunk header")
	}
	h.Epoch = le.Uint64(b[8:])
	h.Seq = le.Uint64(b[16:])
	h.Blocks = le.Uint32(b[24:])
	h.PayloadLen = le.Uint32(b[28:])
	h.Records = le.Uint32(b[32:])
	h.PayloadCRC = le.Uint32(b[36:])
	if blockSize <= 0 || h.Blocks == 0 || uint64(h.Blocks) != uint64(ChunkBlocks(int(h.PayloadLen), blockSize)) {
		return ChunkHeader{}, errorf(ErrCorrupt, "journal chunk of %d blocks cannot hold %d payload bytes", h.Blocks, h.PayloadLen)
	}
	return h, nil
}

// ChunkPayload returns the payload of a whole chunk (h.Blocks blocks in b)
// after checking its crc32c.
func ChunkPayload(h ChunkHeader, b []byte) ([]byte, error) {
	end := uint64(ChunkHeaderSize) + uint64(h.PayloadLen)
	if uint64(len(b)) < end {
		return nil, errorf(ErrCorrupt, "journal chunk truncated")
	}
	p := b[ChunkHeaderSize:end]
	if Checksum(p) != h.PayloadCRC {
		return nil, errorf(ErrChecksum, "journal chunk %d payload", h.Seq)
	}
	return p, nil
}
