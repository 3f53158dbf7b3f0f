package backend

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hideEnviron makes the process non-dumpable: /proc/PID/environ and
// /proc/PID/mem become root's, out of reach of the kernels that run as the
// same user.
func hideEnviron() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("make the agent non-dumpable: %w", err)
	}
	return nil
}
