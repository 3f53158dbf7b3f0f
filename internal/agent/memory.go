package agent

import "runtime/debug"

// releasingCheck wraps the password check: one argon2id check takes the
// hash's memory cost on the heap (64 MiB with spinbook's parameters), and
// the Go runtime keeps that until its next collection, which an idle
// agent's small heap does not ask for for minutes, and gives it back to
// the system later still. In a container or a pod, whose memory limit the
// kernels share with the agent, those 64 MiB stayed after every login.
// After each check the agent collects and returns the memory at once: one
// collection of its few MiB of heap (a millisecond or so), on a path the
// gateway already throttles and runs at most two at a time.
func releasingCheck(check func(password string) bool) func(password string) bool {
	return func(password string) bool {
		ok := check(password)
		debug.FreeOSMemory()
		return ok
	}
}
