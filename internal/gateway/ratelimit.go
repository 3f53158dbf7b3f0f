package gateway

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login attempts are limited per client and for the whole gateway: each
// client (an IPv4 address, an IPv6 /64) has a burst of clientBurst
// attempts, then one every clientInterval; and once it has failed more
// than clientBurst times in a row, each further failure doubles the wait
// before its next attempt, up to maxBackoff. A successful login, or
// backoffReset without a failure, forgets the failures.
const (
	clientBurst    = 5
	clientInterval = 10 * time.Second
	maxBackoff     = 5 * time.Minute
	backoffReset   = time.Hour
	globalRate     = 20 // attempts per second
	maxClients     = 10000
	pruneEvery     = time.Minute
)

// A loginLimiter decides whether a login attempt may go ahead.
//
// Its tables are bounded: a client gets an entry only for an attempt the
// global limit let through (so at most globalRate new entries a second,
// however many addresses an attacker sprays from), and when a table still
// holds maxClients entries, the one used longest ago makes room. A new
// client is thus always limited on its own, never only by the global limit.
type loginLimiter struct {
	global *rate.Limiter
	max    int // maxClients; smaller in tests

	mu        sync.Mutex
	clients   map[netip.Prefix]*clientLimit
	failures  map[netip.Prefix]*failures
	lastPrune time.Time
}

// A clientLimit is one client's rate limiter and when it was last used.
type clientLimit struct {
	lim  *rate.Limiter
	used time.Time
}

// failures are a client's failed logins in a row.
type failures struct {
	count int
	last  time.Time // the last failure
	until time.Time // no attempt before this
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{
		global:   rate.NewLimiter(globalRate, globalRate),
		max:      maxClients,
		clients:  make(map[netip.Prefix]*clientLimit),
		failures: make(map[netip.Prefix]*failures),
	}
}

// allow takes one attempt for client at now. If the attempt must wait, it
// takes nothing, records nothing new, and reports how long to wait.
func (l *loginLimiter) allow(client netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	key, keyed := clientKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastPrune) >= pruneEvery {
		l.pruneLocked(now)
	}
	var mine *clientLimit
	var reserved *rate.Reservation
	if keyed {
		if f := l.failures[key]; f != nil && now.Before(f.until) {
			return false, f.until.Sub(now)
		}
		if mine = l.clients[key]; mine != nil {
			reserved = mine.lim.ReserveN(now, 1)
			if d := reserved.DelayFrom(now); d > 0 {
				reserved.CancelAt(now)
				return false, d
			}
		}
	}
	all := l.global.ReserveN(now, 1)
	if d := all.DelayFrom(now); d > 0 {
		all.CancelAt(now)
		if reserved != nil {
			reserved.CancelAt(now)
		}
		return false, d
	}
	switch {
	case mine != nil:
		mine.used = now
	case keyed:
		if len(l.clients) >= l.max {
			evictOldest(l.clients, func(c *clientLimit) time.Time { return c.used })
		}
		lim := rate.NewLimiter(rate.Every(clientInterval), clientBurst)
		lim.ReserveN(now, 1)
		l.clients[key] = &clientLimit{lim: lim, used: now}
	}
	return true, 0
}

// evictOldest removes the entry of m whose time is earliest.
func evictOldest[V any](m map[netip.Prefix]V, at func(V) time.Time) {
	var oldest netip.Prefix
	var first time.Time
	found := false
	for k, v := range m {
		if t := at(v); !found || t.Before(first) {
			oldest, first, found = k, t, true
		}
	}
	if found {
		delete(m, oldest)
	}
}

// failed records a failed login of client at now: past clientBurst
// failures in a row, the client waits clientInterval, then twice that,
// and so on up to maxBackoff, before its next attempt.
func (l *loginLimiter) failed(client netip.Addr, now time.Time) {
	key, ok := clientKey(client)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[key]
	if f == nil || now.Sub(f.last) >= backoffReset {
		if f == nil && len(l.failures) >= l.max {
			evictOldest(l.failures, func(f *failures) time.Time { return f.last })
		}
		f = &failures{}
		l.failures[key] = f
	}
	f.count++
	f.last = now
	if n := f.count - clientBurst; n > 0 {
		wait := maxBackoff
		if n <= 16 {
			wait = min(clientInterval<<(n-1), maxBackoff)
		}
		f.until = now.Add(wait)
	}
}

// succeeded forgets client's failures.
func (l *loginLimiter) succeeded(client netip.Addr) {
	key, ok := clientKey(client)
	if !ok {
		return
	}
	l.mu.Lock()
	delete(l.failures, key)
	l.mu.Unlock()
}

// clientKey is what a client is limited by: its IPv4 address, or its IPv6
// /64, since one host commonly holds a whole /64.
func clientKey(client netip.Addr) (netip.Prefix, bool) {
	bits := 32
	if client.Is6() {
		bits = 64
	}
	key, err := client.Prefix(bits)
	return key, err == nil
}

// pruneLocked forgets the clients whose limiter has filled up again: they
// are indistinguishable from clients never seen.
func (l *loginLimiter) pruneLocked(now time.Time) {
	l.lastPrune = now
	for k, c := range l.clients {
		if c.lim.TokensAt(now) >= clientBurst {
			delete(l.clients, k)
		}
	}
	for k, f := range l.failures {
		if now.Sub(f.last) >= backoffReset && !now.Before(f.until) {
			delete(l.failures, k)
		}
	}
}

// size reports how many clients are being limited.
func (l *loginLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
