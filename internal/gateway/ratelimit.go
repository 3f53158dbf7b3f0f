package gateway

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login attempts are limited per client and for the whole gateway.
const (
	clientBurst    = 5
	clientInterval = 10 * time.Second
	globalRate     = 20 // attempts per second
	maxClients     = 10000
	pruneEvery     = time.Minute
)

// A loginLimiter decides whether a login attempt may go ahead.
type loginLimiter struct {
	global *rate.Limiter

	mu        sync.Mutex
	clients   map[netip.Prefix]*rate.Limiter
	lastPrune time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{
		global:  rate.NewLimiter(globalRate, globalRate),
		clients: make(map[netip.Prefix]*rate.Limiter),
	}
}

// allow takes one attempt for client at now. If the attempt must wait, it
// takes nothing and reports how long to wait.
func (l *loginLimiter) allow(client netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
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

// clientLimiter returns client's limiter, creating it if need be. IPv6
// clients are limited by /64, since one host commonly holds a whole /64.
// When too many clients are being limited, it returns nil and only the
// global limit applies to a new client.
func (l *loginLimiter) clientLimiter(client netip.Addr, now time.Time) *rate.Limiter {
	bits := 32
	if client.Is6() {
		bits = 64
	}
	key, err := client.Prefix(bits)
	if err != nil {
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
}

// size reports how many clients are being limited.
func (l *loginLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
