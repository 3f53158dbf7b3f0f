package gateway

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxSessions bounds the session store; when it is full, the session
// closest to expiry makes room for a new one.
const maxSessions = 1024

// A sessionStore keeps the live sessions in memory. Sessions are keyed by
// the SHA-256 of their id, so the ids themselves are not kept and a lookup
// does not compare secrets byte by byte.
type sessionStore struct {
	ttl time.Duration
	// ended, when set, is called with the key of every session that ends
	// (logout, a new login, expiry, eviction), outside the store's lock:
	// the gateway closes that session's websockets.
	ended func(key [sha256.Size]byte)

	mu      sync.Mutex
	expires map[[sha256.Size]byte]time.Time
}

func newSessionStore(ttl time.Duration) *sessionStore {
	return &sessionStore{ttl: ttl, expires: make(map[[sha256.Size]byte]time.Time)}
}

// create starts a new session and returns its id.
func (s *sessionStore) create(now time.Time) string {
	id := newSessionID()
	s.mu.Lock()
	ended := s.pruneLocked(now)
	if len(s.expires) >= maxSessions {
		var oldest [sha256.Size]byte
		var first time.Time
		for k, exp := range s.expires {
			if first.IsZero() || exp.Before(first) {
				oldest, first = k, exp
			}
		}
		delete(s.expires, oldest)
		ended = append(ended, oldest)
	}
	s.expires[sessionKey(id)] = now.Add(s.ttl)
	s.mu.Unlock()
	s.end(ended)
	return id
}

// touch reports whether the Cookie header values carry a live session in
// a cookie called name, and if so extends that session. Every cookie of
// that name is tried, so a stale cookie planted for a narrower path (by
// another server on the same host) cannot shadow the real one.
func (s *sessionStore) touch(cookies []string, name string, now time.Time) bool {
	_, ok := s.touchKey(cookies, name, now)
	return ok
}

// touchKey is touch, also returning the live session's key.
func (s *sessionStore) touchKey(cookies []string, name string, now time.Time) ([sha256.Size]byte, bool) {
	var live [sha256.Size]byte
	var expired [][sha256.Size]byte // rarely any: no allocation otherwise
	ok := false
	eachCookie(cookies, name, func(id string) bool {
		key := sessionKey(id)
		s.mu.Lock()
		defer s.mu.Unlock()
		exp, found := s.expires[key]
		switch {
		case !found:
			return true
		case !now.Before(exp):
			delete(s.expires, key)
			expired = append(expired, key)
			return true
		}
		s.expires[key] = now.Add(s.ttl)
		live, ok = key, true
		return false
	})
	s.end(expired)
	return live, ok
}

// remove ends every session named by a cookie called name.
func (s *sessionStore) remove(cookies []string, name string) {
	var ended [][sha256.Size]byte
	eachCookie(cookies, name, func(id string) bool {
		key := sessionKey(id)
		s.mu.Lock()
		if _, ok := s.expires[key]; ok {
			delete(s.expires, key)
			ended = append(ended, key)
		}
		s.mu.Unlock()
		return true
	})
	s.end(ended)
}

// live counts the sessions that have not expired at now.
func (s *sessionStore) live(now time.Time) int {
	s.mu.Lock()
	ended := s.pruneLocked(now)
	n := len(s.expires)
	s.mu.Unlock()
	s.end(ended)
	return n
}

// pruneLocked deletes the sessions expired at now and returns their keys.
func (s *sessionStore) pruneLocked(now time.Time) [][sha256.Size]byte {
	var ended [][sha256.Size]byte
	for k, exp := range s.expires {
		if !now.Before(exp) {
			delete(s.expires, k)
			ended = append(ended, k)
		}
	}
	return ended
}

// expiry returns when the session key expires; false when it has ended
// (it is then removed, and its end reported).
func (s *sessionStore) expiry(key [sha256.Size]byte, now time.Time) (time.Time, bool) {
	s.mu.Lock()
	exp, ok := s.expires[key]
	if ok && !now.Before(exp) {
		delete(s.expires, key)
		s.mu.Unlock()
		s.end([][sha256.Size]byte{key})
		return time.Time{}, false
	}
	s.mu.Unlock()
	return exp, ok
}

// extend starts the live session key again at now, as a request would;
// an ended session stays ended.
func (s *sessionStore) extend(key [sha256.Size]byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.expires[key]; ok && now.Before(exp) {
		s.expires[key] = now.Add(s.ttl)
	}
}

// end reports the ended sessions' keys.
func (s *sessionStore) end(keys [][sha256.Size]byte) {
	if s.ended == nil {
		return
	}
	for _, k := range keys {
		s.ended(k)
	}
}

// sessionKey is the store's key for a session id. Ids of the usual length
// are hashed from a copy on the stack, so a lookup does not allocate.
func sessionKey(id string) [sha256.Size]byte {
	var buf [64]byte
	if len(id) <= len(buf) {
		return sha256.Sum256(buf[:copy(buf[:], id)])
	}
	return sha256.Sum256([]byte(id))
}

// eachCookie calls f with the value of every cookie called name in the
// Cookie header values, until f returns false. It does not allocate.
func eachCookie(header []string, name string, f func(value string) bool) {
	for _, line := range header {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" && !f(v) {
				return
			}
		}
	}
}

// setSessionCookie gives the client its new session id.
func (g *Gateway) setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName,
		Value:    id,
		Path:     "/",
		Secure:   g.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// clearSessionCookie tells the client to forget its session id.
func (g *Gateway) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   g.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// isSessionCookie reports whether name is the session cookie of any
// spinbook gateway. Browsers send cookies to every port of a host, so a
// user's browser may carry the sessions of other servers on this host:
// none of them may reach this server's Jupyter.
func isSessionCookie(name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	return name == "spinbook" || strings.HasPrefix(name, "spinbook-")
}
