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
type loginLimiter struct {
	global *rate.Limiter

	mu        sync.Mutex
	clients   map[netip.Prefix]*rate.Limiter
	failures  map[netip.Prefix]*failures
	lastPrune time.Time
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
		clients:  make(map[netip.Prefix]*rate.Limiter),
		failures: make(map[netip.Prefix]*failures),
	}
}

// allow takes one attempt for client at now. If the attempt must wait, it
// takes nothing and reports how long to wait.
func (l *loginLimiter) allow(client netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if key, ok := clientKey(client); ok {
		l.mu.Lock()
		f := l.failures[key]
		l.mu.Unlock()
		if f != nil && now.Before(f.until) {
			return false, f.until.Sub(now)
		}
	}
	per := l.clientLimiter(client, now)
	var mine *rate.Reservation
	if per != nil {
		mine = per.ReserveN(now, 1)
		if d := mine.DelayFrom(now); d > 0 {
			mine.CancelAt(now)
			return false, d
		}
	}
	all := l.global.ReserveN(now, 1)
	if d := all.DelayFrom(now); d > 0 {
		all.CancelAt(now)
		if mine != nil {
			mine.CancelAt(now)
		}
		return false, d
	}
	return true, 0
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
		if f == nil && len(l.failures) >= maxClients {
			return
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

// clientLimiter returns client's limiter, creating it if need be. When
// too many clients are being limited, it returns nil and only the global
// limit applies to a new client.
func (l *loginLimiter) clientLimiter(client netip.Addr, now time.Time) *rate.Limiter {
	key, ok := clientKey(client)
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastPrune) >= pruneEvery {
		l.pruneLocked(now)
	}
	lim, ok := l.clients[key]
	if ok {
		return lim
	}
	if len(l.clients) >= maxClients {
		return nil
	}
	lim = rate.NewLimiter(rate.Every(clientInterval), clientBurst)
	l.clients[key] = lim
	return lim
}

// pruneLocked forgets the clients whose limiter has filled up again: they
// are indistinguishable from clients never seen.
func (l *loginLimiter) pruneLocked(now time.Time) {
	l.lastPrune = now
	for k, lim := range l.clients {
		if lim.TokensAt(now) >= clientBurst {
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
