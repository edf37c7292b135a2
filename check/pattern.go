package check

import (
	"bytes"
	"encoding/binary"
)

// CellSize is the unit of self-describing data: every write covers whole
// cells (offsets and lengths are multiples of CellSize), and every cell a
// write puts in a file names the file, its own offset and the write that put
// it there, so any read can be verified on its own.
const CellSize = 16

// DefaultPoison is the 16-byte marker the stress tests fill devices with
// before mkfs. It is not a valid cell (its checksum does not match), so a read
// that returns it is reported as poison, never accepted as data.
var DefaultPoison = []byte("PoIsOn-AiOdIo-\xde\xad")

// maxOffset bounds file offsets encodable in a cell (48 bits).
const maxOffset = 1 << 48

// cell layout (little endian):
//
//	[0:8)   fileID<<48 | offset   (offset of the cell in its file)
//	[8:12)  gen                   (the write that put the cell there; 0 is never used)
//	[12:16) check                 (hash of the salt, the first word and gen)
//
// An all-zero cell is "never written" (a hole, an unwritten extent, the gap
// past an old EOF, a punched or truncated range).

func cellCheck(salt uint64, w0 uint64, gen uint32) uint32 {
	x := salt ^ w0*0x9e3779b97f4a7c15 ^ uint64(gen)*0xc2b2ae3d27d4eb4f
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	x *= 0x94d049bb133111eb
	x ^= x >> 32
	c := uint32(x)
	if c == 0 {
		c = 1 // a valid cell is never all zero
	}
	return c
}

// fillCells writes the pattern of write gen for file id into p, which is
// to be written at file offset off (both multiples of CellSize).
func fillCells(p []byte, salt uint64, id uint16, off int64, gen uint32) {
	for i := 0; i+CellSize <= len(p); i += CellSize {
		w0 := uint64(id)<<48 | uint64(off+int64(i))
		binary.LittleEndian.PutUint64(p[i:], w0)
		binary.LittleEndian.PutUint32(p[i+8:], gen)
		binary.LittleEndian.PutUint32(p[i+12:], cellCheck(salt, w0, gen))
	}
}

// cellKind classifies one cell read back.
type cellKind uint8

const (
	cellZero    cellKind = iota // all zero
	cellValid                   // a valid pattern for this file and offset; gen set
	cellPoison                  // exactly the poison marker
	cellForeign                 // a valid pattern of another file or offset (stale data moved)
	cellGarbage                 // anything else (torn, mixed, canary left by a short fill)
)

func (k cellKind) String() string {
	switch k {
	case cellZero:
		return "zero"
	case cellValid:
		return "valid"
	case cellPoison:
		return "POISON"
	case cellForeign:
		return "foreign"
	}
	return "garbage"
}

// decodeCell classifies the cell c read at file offset off of file id.
// For cellValid gen is the write; for cellForeign foreignID/foreignOff
// say where the data came from.
func decodeCell(c []byte, salt uint64, id uint16, off int64, poison []byte) (k cellKind, gen uint32, foreignID uint16, foreignOff int64) {
	w0 := binary.LittleEndian.Uint64(c)
	gen = binary.LittleEndian.Uint32(c[8:])
	ck := binary.LittleEndian.Uint32(c[12:])
	if w0 == 0 && gen == 0 && ck == 0 {
		return cellZero, 0, 0, 0
	}
	if gen != 0 && ck == cellCheck(salt, w0, gen) {
		if w0 == uint64(id)<<48|uint64(off) {
			return cellValid, gen, 0, 0
		}
		return cellForeign, gen, uint16(w0 >> 48), int64(w0 & (maxOffset - 1))
	}
	if len(poison) == CellSize && bytes.Equal(c[:CellSize], poison) {
		return cellPoison, 0, 0, 0
	}
	return cellGarbage, 0, 0, 0
}

// poisonBytes counts the bytes of c (at file offset off) that equal the
// poison marker at their phase: the marker is laid back to back from device
// offset 0 and file blocks map to device blocks, so phase = off mod len.
func poisonBytes(c []byte, off int64, poison []byte) int {
	if len(poison) == 0 {
		return 0
	}
	n := 0
	for i, b := range c {
		if b == poison[(off+int64(i))%int64(len(poison))] {
			n++
		}
	}
	return n
}

// canary fills read buffers before a read, so that bytes a read claims to
// have returned but never filled show up as garbage.
const canary = 0xC3
