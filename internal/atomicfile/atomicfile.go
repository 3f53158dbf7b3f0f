// Package atomicfile replaces files whole: a reader sees the old content or
// the new, never a part of either, and a crash (of the process or the
// machine) at any moment leaves the old file in place.
//
// Each write goes to its own temporary file in the target's directory (so
// that the rename stays on one file system), named ".BASE.RANDOM.tmp" by
// os.CreateTemp: two writers never share it, as they did with a fixed
// PATH.tmp, where one could truncate or rename away the other's half-written
// file. The data is flushed to disk and given its mode before the rename
// makes it the file; then the directory is flushed too, so that the rename
// itself survives a power loss.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, with exactly mode perm (no umask).
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteFunc replaces path with what fill writes to f, a new temporary file
// (mode 0600 while it is written, perm once it is complete). fill may also
// change f's owner.
func WriteFunc(path string, perm os.FileMode, fill func(f *os.File) error) error {
	return Replace(path, perm, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		err = fill(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// Replace replaces path with the file that produce writes at tmp, a path
// that exists (empty, mode 0600) and is this call's alone: for a program
// that writes a file by name (git bundle create, docker save -o). produce
// may replace tmp by rename; what is at tmp when it returns becomes path.
// On any error tmp is removed and path is left as it was.
func Replace(path string, perm os.FileMode, produce func(tmp string) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := produce(tmp); err != nil {
		return err
	}
	if err := finish(tmp, perm); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// finish gives tmp its mode and flushes it to disk.
func finish(tmp string, perm os.FileMode) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir flushes dir, so that a rename in it is on disk. It is best
// effort: some file systems cannot sync a directory, and the file is
// already complete either way.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	_ = d.Sync()
}
