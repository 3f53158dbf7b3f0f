package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o644, 0o755} {
		path := filepath.Join(dir, fmt.Sprintf("f%o", perm))
		for _, data := range []string{"first", "second, longer than the first", ""} {
			if err := Write(path, []byte(data), perm); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != data {
				t.Errorf("content %q, %v; want %q", got, err, data)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
			}
		}
	}
	assertNoTemps(t, dir)
}

// TestConcurrentWriters: many writers of one file, and a reader watching
// it: the reader only ever sees one writer's whole content, no writer
// fails, and no temporary file is left.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "record.json")
	const size, writers, rounds = 64 << 10, 8, 20
	content := func(w int) []byte { return bytes.Repeat([]byte{byte('a' + w)}, size) }
	if err := Write(path, content(0), 0o600); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var readerErr error
	var reads int
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil {
				readerErr = err
				return
			}
			reads++
			if len(got) != size || bytes.Count(got, got[:1]) != size {
				readerErr = fmt.Errorf("read a torn file: %d bytes, starting %q", len(got), got[:min(len(got), 8)])
				return
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for range rounds {
				if err := Write(path, content(w), 0o600); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-readerDone
	close(errs)
	for err := range errs {
		t.Errorf("writer: %v", err)
	}
	if readerErr != nil {
		t.Errorf("reader after %d reads: %v", reads, readerErr)
	}
	assertNoTemps(t, dir)
}

// TestFailedWriteKeepsOld: a write that fails halfway leaves the old file
// and no temporary file.
func TestFailedWriteKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.json")
	if err := Write(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := WriteFunc(path, 0o600, func(f *os.File) error {
		f.Write([]byte("half of the n"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want %v", err, boom)
	}
	err = Replace(path, 0o600, func(tmp string) error {
		os.WriteFile(tmp, []byte("half"), 0o600)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Replace err %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("content %q, want the old", got)
	}
	assertNoTemps(t, dir)
}

// TestCrashKeepsOld: a process killed in the middle of a write (SIGKILL,
// no chance to clean up) leaves the old file whole, and the next write
// works.
func TestCrashKeepsOld(t *testing.T) {
	if os.Getenv("ATOMICFILE_CRASH_PATH") != "" {
		crashingWriter()
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "record.json")
	if err := Write(path, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsOld$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_CRASH_PATH="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // held open until the child is killed
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child says when it has written half and is stuck.
	line := make([]byte, len("half written\n"))
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "half written\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()

	if got, _ := os.ReadFile(path); string(got) != "old content" {
		t.Errorf("after the crash: %q, want the old content", got)
	}
	if err := Write(path, []byte("new content"), 0o600); err != nil {
		t.Fatalf("write after the crash: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new content" {
		t.Errorf("after a new write: %q", got)
	}
}

// crashingWriter is the child of TestCrashKeepsOld: it writes half of a
// new content, says so, and waits to be killed.
func crashingWriter() {
	path := os.Getenv("ATOMICFILE_CRASH_PATH")
	WriteFunc(path, 0o600, func(f *os.File) error {
		f.Write([]byte("new cont"))
		f.Sync()
		os.Stdout.WriteString("half written\n")
		io.Copy(io.Discard, os.Stdin) // the parent never closes it: wait to be killed
		return nil
	})
	os.Exit(3)
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
