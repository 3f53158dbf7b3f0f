package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// An open token is how the team portal opens a person's server without a
// second password: the portal signs, with its Ed25519 key, a short claim
// "this browser is <Subject>, for the server at <Audience>, until
// <Expires>", and the browser posts it (never in a URL) to the server's
// front door, which checks it with the portal's public key (Options.
// PortalKey) and exchanges it for its own session cookie. Each token works
// once: the front door remembers the ids it took until they expire.
//
// Wire form: "sbo1." + base64url(JSON claims) + "." + base64url(signature
// over everything before the last dot).

// MaxOpenTokenLife is the longest an open token may live.
const MaxOpenTokenLife = 60 * time.Second

const openTokenPrefix = "sbo1."

// OpenClaims are what an open token says.
type OpenClaims struct {
	// Subject is the server's user; it must be the front door's own.
	Subject string `json:"sub"`
	// Audience is the server's origin as the portal opens it
	// (scheme://host[:port]); its host must be the request's Host.
	Audience string `json:"aud"`
	// ID is random and unique; a token whose id was seen is refused.
	ID       string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

// SignOpenToken returns a token for c signed with key. An empty ID is
// filled with 16 random bytes.
func SignOpenToken(key ed25519.PrivateKey, c OpenClaims) (string, error) {
	if c.ID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode open token: %w", err)
	}
	signed := openTokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(key, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Why an open token is refused; the front door logs these and shows the
// person only that the link did not work.
var (
	errTokenMalformed = errors.New("malformed")
	errTokenSignature = errors.New("signature does not verify with the portal's key")
	errTokenExpired   = errors.New("expired")
	errTokenTooLong   = errors.New("lifetime longer than 60s")
	errTokenUser      = errors.New("for another user's server")
	errTokenAudience  = errors.New("for another server")
	errTokenReplayed  = errors.New("already used")
)

// verifyOpenToken checks token's form, signature, lifetime and audience
// (user, and host as the request names it, with scheme). It does not
// consume the id.
func verifyOpenToken(key ed25519.PublicKey, token, user, host, scheme string, now time.Time) (OpenClaims, error) {
	var c OpenClaims
	rest, ok := strings.CutPrefix(token, openTokenPrefix)
	if !ok || len(token) > 4096 {
		return c, errTokenMalformed
	}
	payloadB64, sigB64, ok := strings.Cut(rest, ".")
	if !ok {
		return c, errTokenMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, errTokenMalformed
	}
	if !ed25519.Verify(key, []byte(openTokenPrefix+payloadB64), sig) {
		return c, errTokenSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(payloadB64)
	if err != nil || json.Unmarshal(payload, &c) != nil || c.ID == "" {
		return c, errTokenMalformed
	}
	exp, iat := time.Unix(c.Expires, 0), time.Unix(c.IssuedAt, 0)
	switch {
	case !now.Before(exp):
		return c, errTokenExpired
	case exp.Sub(iat) > MaxOpenTokenLife, exp.Sub(now) > MaxOpenTokenLife:
		return c, errTokenTooLong
	case c.Subject != user:
		return c, errTokenUser
	}
	aud, err := url.Parse(c.Audience)
	if err != nil || aud.Scheme != scheme || !strings.EqualFold(aud.Host, host) {
		return c, errTokenAudience
	}
	return c, nil
}

// maxUsedTokens bounds the used-token memory; a token lives at most a
// minute, so this is more than any portal sends.
const maxUsedTokens = 4096

// usedTokens remembers the ids of the open tokens taken, until they expire.
type usedTokens struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

// take records id (valid until exp) and reports whether it was new. When
// the memory is full of live ids, it refuses: better a retry than a replay.
func (u *usedTokens) take(id string, exp, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ids == nil {
		u.ids = make(map[string]time.Time)
	}
	for k, e := range u.ids {
		if !now.Before(e) {
			delete(u.ids, k)
		}
	}
	if _, seen := u.ids[id]; seen || len(u.ids) >= maxUsedTokens {
		return false
	}
	u.ids[id] = exp
	return true
}
