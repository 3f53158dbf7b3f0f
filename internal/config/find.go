package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Find returns the configuration file to use: explicit (the --config flag)
// if not empty, else $SPINBOOK_CONFIG if set, both of which must exist;
// else the first of ./spinbook.yaml and $XDG_CONFIG_HOME/spinbook/config.yaml
// (~/.config/spinbook/config.yaml without $XDG_CONFIG_HOME) that exists.
// When there is none it returns "" and a nil error: the defaults apply.
func Find(explicit string) (path string, err error) {
	if explicit != "" {
		return mustExist(explicit, "--config")
	}
	if env := os.Getenv("SPINBOOK_CONFIG"); env != "" {
		return mustExist(env, "$SPINBOOK_CONFIG")
	}
	candidates := []string{"spinbook.yaml"}
	if dir := UserConfigDir(); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "spinbook", "config.yaml"))
	}
	for _, c := range candidates {
		switch ok, err := isFile(c); {
		case err != nil:
			return "", fmt.Errorf("find configuration: %w", err)
		case ok:
			return c, nil
		}
	}
	return "", nil
}

func mustExist(path, from string) (string, error) {
	ok, err := isFile(path)
	if err != nil {
		return "", fmt.Errorf("configuration file %s (from %s): %w", path, from, err)
	}
	if !ok {
		return "", fmt.Errorf("configuration file %s (from %s) does not exist: %w", path, from, fs.ErrNotExist)
	}
	return path, nil
}

// isFile reports whether path exists; it is an error for it to be a
// directory or unreadable.
func isFile(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case fi.IsDir():
		return false, fmt.Errorf("%s is a directory, not a file", path)
	}
	return true, nil
}

// UserConfigDir is $XDG_CONFIG_HOME, else ~/.config, else "".
func UserConfigDir() string {
	if x := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		return x
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config")
	}
	return ""
}
