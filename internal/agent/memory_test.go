package agent

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/spinbook/spinbook/internal/secret"
)

// TestPasswordCheckGivesItsMemoryBack: after a login's argon2id check
// (64 MiB), the agent holds no more than a few MiB of heap, in use or kept
// from the system.
func TestPasswordCheckGivesItsMemoryBack(t *testing.T) {
	s, err := secret.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := secret.ParsePasswordHash(s)
	if err != nil {
		t.Fatal(err)
	}
	check := releasingCheck(hash.Verify)
	for _, tt := range []struct {
		password string
		want     bool
	}{{"correct horse", true}, {"wrong", false}} {
		debug.FreeOSMemory() // what HashPassword took
		if got := check(tt.password); got != tt.want {
			t.Fatalf("check(%q) = %v, want %v", tt.password, got, tt.want)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if held := m.HeapInuse + m.HeapIdle - m.HeapReleased; held > 16<<20 {
			t.Errorf("after check(%q) the heap holds %d MiB (in use %d, idle and not released %d); want the argon2id memory given back",
				tt.password, held>>20, m.HeapInuse>>20, (m.HeapIdle-m.HeapReleased)>>20)
		}
	}
}
