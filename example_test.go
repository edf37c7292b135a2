package aiodio_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio"
)

// Example is a tour of the API: make a volume on a temporary image, open a
// file for direct I/O, write and read it through a Ring, and check the
// volume.
func Example() {
	dir, err := os.MkdirTemp("", "aiodio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "vol.img")

	// A 64 MiB volume in a sparse image file.
	if err := aiodio.Mkfs(img, aiodio.MkfsOptions{Size: 64 << 20}); err != nil {
		log.Fatal(err)
	}
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := v.Mkdir("logs", 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := v.OpenFile("logs/wal.0", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		log.Fatal(err)
	}

	// Direct I/O wants aligned memory; AlignedBuffer gives page alignment.
	mem, off := f.DIOAlign()
	fmt.Println("alignment ok:", 4096%mem == 0 && 4096%off == 0)
	wbuf := aiodio.AlignedBuffer(4096)
	copy(wbuf, "hello, direct world")

	r, err := v.NewRing(8)
	if err != nil {
		log.Fatal(err)
	}
	// Write one block, wait for it, then read it back.
	if _, err := r.Submit(aiodio.Op{Code: aiodio.OpWrite, File: f, Buf: wbuf, Off: 0, UserData: 1}); err != nil {
		log.Fatal(err)
	}
	cs := make([]aiodio.Completion, 1)
	if _, err := r.Wait(context.Background(), 1, cs); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("write: op %d, %d bytes, err %v\n", cs[0].UserData, cs[0].N, cs[0].Err)

	rbuf := aiodio.AlignedBuffer(4096)
	if _, err := r.Submit(aiodio.Op{Code: aiodio.OpRead, File: f, Buf: rbuf, Off: 0, UserData: 2}); err != nil {
		log.Fatal(err)
	}
	if _, err := r.Wait(context.Background(), 1, cs); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read: op %d, %d bytes, %q\n", cs[0].UserData, cs[0].N, rbuf[:19])

	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}
	fi, _ := v.Stat("logs/wal.0")
	fmt.Println("size:", fi.Size())
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := v.Close(); err != nil {
		log.Fatal(err)
	}
	findings, err := aiodio.Fsck(img)
	fmt.Println("fsck findings:", len(findings), err)
	// Output:
	// alignment ok: true
	// write: op 1, 4096 bytes, err <nil>
	// read: op 2, 4096 bytes, "hello, direct world"
	// size: 4096
	// fsck findings: 0 <nil>
}

// ExampleVolume_NewRingFunc keeps four direct writes in flight with a
// function ring: each completion's function submits the file's next block
// at once, on the completion thread, with no goroutine hand-off per op.
func ExampleVolume_NewRingFunc() {
	dir, err := os.MkdirTemp("", "aiodio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "vol.img")
	if err := aiodio.Mkfs(img, aiodio.MkfsOptions{Size: 64 << 20}); err != nil {
		log.Fatal(err)
	}
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		log.Fatal(err)
	}
	f, err := v.OpenFile("data", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		log.Fatal(err)
	}

	const blocks, inFlight = 64, 4
	bufs := make([][]byte, inFlight)
	for i := range bufs {
		bufs[i] = aiodio.AlignedBuffer(4096)
	}
	var (
		mu      sync.Mutex // the function may run on several goroutines at once
		next    int64      // next block to write
		written int
		failed  error
		done    = make(chan struct{})
		r       *aiodio.Ring
	)
	// submitNext writes the next block from buffer slot (mu held); it
	// reports whether there was one.
	submitNext := func(slot int) bool {
		if next == blocks {
			return false
		}
		copy(bufs[slot], fmt.Sprintf("block %d", next))
		op := aiodio.Op{Code: aiodio.OpWrite, File: f, Buf: bufs[slot], Off: next * 4096, UserData: uint64(slot)}
		next++
		if _, err := r.Submit(op); err != nil {
			failed = err
			return false
		}
		return true
	}
	active := 0
	r, err = v.NewRingFunc(inFlight, func(c aiodio.Completion) {
		mu.Lock()
		defer mu.Unlock()
		if c.Err != nil && failed == nil {
			failed = c.Err
		}
		written += c.N
		if failed != nil || !submitNext(int(c.UserData)) {
			if active--; active == 0 {
				close(done)
			}
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	mu.Lock()
	for slot := range inFlight {
		if submitNext(slot) {
			active++
		}
	}
	mu.Unlock()
	<-done
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if failed != nil {
		log.Fatal(failed)
	}
	fmt.Println("bytes written:", written)

	check := aiodio.AlignedBuffer(4096)
	if _, err := f.ReadAt(check, 63*4096); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("last block: %q\n", check[:8])
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := v.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// bytes written: 262144
	// last block: "block 63"
}
