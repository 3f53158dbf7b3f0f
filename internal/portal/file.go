package portal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

var errNoFile = errors.New("no such file")

// readPrivate reads a file that must be the portal's alone (mode 0600).
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoFile
	}
	if err != nil {
		return nil, fmt.Errorf("portal key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("portal key %s: mode %v lets others read it; chmod 600 it", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}
