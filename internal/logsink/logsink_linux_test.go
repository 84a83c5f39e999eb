//go:build linux && (amd64 || arm64)

package logsink

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
)

// fallbackCounter counts the writes that reach the fallback.
type fallbackCounter struct {
	*os.File
	n atomic.Int64
}

// writeAndCheck writes lines through w from another goroutine; read sees
// the other end only once that goroutine had to fall back to the file (the
// reader is behind), then every line must arrive whole and in order.
func writeAndCheck(t *testing.T, w *writer, fb *atomic.Int64, r io.Reader) {
	t.Helper()
	const lines = 20000 // about 1.5 MB: well over any socket or pipe buffer
	errc := make(chan error, 1)
	go func() {
		for i := range lines {
			if _, err := fmt.Fprintf(w, "time=now level=INFO msg=verdict n=%06d\n", i); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for fb.Load() == 0 {
		select {
		case err := <-errc:
			t.Fatalf("all lines written without the reader and without falling back (err %v)", err)
		default:
			runtime.Gosched()
		}
	}
	sc := bufio.NewScanner(r)
	for i := range lines {
		if !sc.Scan() {
			t.Fatalf("line %d: %v", i, sc.Err())
		}
		if want := fmt.Sprintf("time=now level=INFO msg=verdict n=%06d", i); sc.Text() != want {
			t.Fatalf("line %d: %q, want %q", i, sc.Text(), want)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestPipe(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	w, ok := New(pw).(*writer)
	if !ok || w.send {
		t.Fatalf("New(pipe) = %T, want the raw pipe writer", New(pw))
	}
	defer syscall.Close(w.fd)
	if w.fd == int(pw.Fd()) {
		t.Fatal("the pipe's own descriptor is used: O_NONBLOCK would reach the shared description")
	}
	fb := hook(w)
	writeAndCheck(t, w, fb, pr)
}

func TestSocket(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	w, ok := New(a).(*writer)
	if !ok || !w.send {
		t.Fatalf("New(socket) = %T, want the raw socket writer", New(a))
	}
	fb := hook(w)
	writeAndCheck(t, w, fb, b)
}

func TestRegularFileAsItIs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if w := New(f); w != io.Writer(f) {
		t.Fatalf("New(regular file) = %T, want the file", w)
	}
}

// hook replaces w's fallback with one that counts its writes.
func hook(w *writer) *atomic.Int64 {
	c := &fallbackCounter{File: w.f}
	w.fallback = c
	return &c.n
}

func (c *fallbackCounter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.File.Write(p)
}
