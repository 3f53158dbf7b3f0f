package gateway

import (
	"net/url"
	"strings"
)

// maxNextLen bounds a login redirect target.
const maxNextLen = 2048

// SanitizeNext returns next if it is a safe target for the redirect after
// login, and "/" otherwise. A safe target is a path on this origin, in the
// escaped form a browser sends (RFC 3986 characters only): it starts with a
// single "/", has no scheme, host, backslash or control character, and no
// "//" in its path, neither as written nor after percent-decoding
// (repeatedly, as a chain of servers might), and it is not one of the
// gateway's own routes.
func SanitizeNext(next string) string {
	if !safeNext(next) {
		return "/"
	}
	return next
}

func safeNext(s string) bool {
	if s == "" || len(s) > maxNextLen || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !urlByte(s[i]) {
			return false
		}
	}
	// Look at s and up to three decodings of it; anything still encoded
	// after that is refused rather than guessed at.
	for range 4 {
		if !safePath(s) {
			return false
		}
		if !strings.Contains(s, "%") {
			return true
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if d == s {
			return true
		}
		s = d
	}
	return false
}

// safePath checks one (possibly decoded) form of a target.
func safePath(s string) bool {
	if len(s) == 0 || s[0] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	path := s
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if strings.Contains(path, "//") {
		return false
	}
	// After login, going to a logout route would undo it.
	return path != "/logout" && path != "/spinbook" && !strings.HasPrefix(path, "/spinbook/")
}

// urlByte reports whether c may appear unescaped in a URL (RFC 3986
// unreserved and reserved characters, and '%').
func urlByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0
}
