package unixuser

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Become makes this process (every thread of it) u, for good: its
// supplementary groups, then its group, then its user, real, effective and
// saved alike, so that it cannot become root again. It must run as root.
func Become(u User) error {
	if os.Geteuid() != 0 {
		return errors.New("become the image's user: not running as root")
	}
	if err := syscall.Setgroups(u.Groups); err != nil {
		return fmt.Errorf("become the image's user: set groups: %w", err)
	}
	if err := syscall.Setresgid(u.GID, u.GID, u.GID); err != nil {
		return fmt.Errorf("become the image's user: set gid %d: %w", u.GID, err)
	}
	if err := syscall.Setresuid(u.UID, u.UID, u.UID); err != nil {
		return fmt.Errorf("become the image's user: set uid %d: %w", u.UID, err)
	}
	if u.UID != 0 && syscall.Setuid(0) == nil {
		return errors.New("become the image's user: could still become root afterwards")
	}
	return nil
}
