package gateway

import (
	"net/netip"
	"testing"
	"time"
)

// sprayAddr is the i-th address of an attacker holding 2001:db8::/32: each
// is a /64 of its own, so each is a new client to the limiter.
func sprayAddr(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
}

// TestLoginLimiterGlobalRefusalRecordsNothing: attempts the global limit
// refuses create no per-client entries, so a spray from many addresses
// cannot fill the table.
func TestLoginLimiterGlobalRefusalRecordsNothing(t *testing.T) {
	l := newLoginLimiter()
	now := newClock().Now()
	allowed := 0
	for i := range 3 * maxClients {
		if ok, _ := l.allow(sprayAddr(i), now); ok {
			allowed++
		}
	}
	if allowed != globalRate {
		t.Fatalf("%d attempts allowed at one instant, want the global burst %d", allowed, globalRate)
	}
	if got := l.size(); got != globalRate {
		t.Errorf("limiter tracks %d clients after a refused spray, want %d (the allowed ones)", got, globalRate)
	}
}

// TestLoginLimiterNewClientKeepsItsLimit: after a spray from many addresses,
// a new client still has its own limit: its burst, then a wait.
func TestLoginLimiterNewClientKeepsItsLimit(t *testing.T) {
	l := newLoginLimiter()
	now := newClock().Now()
	for i := range 2 * maxClients {
		l.allow(sprayAddr(i), now)
	}
	now = now.Add(time.Second) // the global limit has room again
	victim := netip.MustParseAddr("198.51.100.9")
	for i := range clientBurst {
		if ok, _ := l.allow(victim, now); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		l.failed(victim, now)
	}
	ok, wait := l.allow(victim, now)
	if ok || wait < clientInterval {
		t.Errorf("attempt %d: allowed %v, wait %v; want refused for at least %v", clientBurst+1, ok, wait, clientInterval)
	}
}

// TestLoginLimiterFullTableEvictsOldest: when the tables are full, the
// client seen longest ago makes room, and a new client is limited on its
// own.
func TestLoginLimiterFullTableEvictsOldest(t *testing.T) {
	l := newLoginLimiter()
	l.max = 3
	now := newClock().Now()
	tick := func() { now = now.Add(time.Second / globalRate) }
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	for i := range 3 {
		tick()
		l.allow(addr(i), now)
		l.failed(addr(i), now)
	}
	tick()
	l.allow(addr(0), now) // addr(1) is now the one seen longest ago
	l.failed(addr(0), now)

	victim := addr(9)
	for i := range clientBurst {
		tick()
		if ok, _ := l.allow(victim, now); !ok {
			t.Fatalf("victim attempt %d refused", i+1)
		}
		l.failed(victim, now)
	}
	if ok, wait := l.allow(victim, now); ok || wait <= 0 {
		t.Errorf("victim attempt %d: allowed %v, wait %v; want its own limit to refuse it", clientBurst+1, ok, wait)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.clients) > l.max || len(l.failures) > l.max {
		t.Errorf("tables hold %d and %d entries, want at most %d", len(l.clients), len(l.failures), l.max)
	}
	if _, ok := l.clients[netip.PrefixFrom(addr(1), 32)]; ok {
		t.Errorf("the client seen longest ago was kept")
	}
	if _, ok := l.clients[netip.PrefixFrom(addr(0), 32)]; !ok {
		t.Errorf("a recently seen client was evicted")
	}
}
