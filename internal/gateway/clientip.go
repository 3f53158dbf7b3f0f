package gateway

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r: the socket peer,
// or, when the peer is a trusted proxy, what ParseForwardedFor finds in its
// X-Forwarded-For. No other header (X-Real-IP, Forwarded, ...) is read.
// The result is invalid when the peer is not an IP address.
func (g *Gateway) ClientIP(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !contains(g.trusted, peer) {
		return peer
	}
	return ParseForwardedFor(peer, r.Header["X-Forwarded-For"], g.trusted)
}

// allowed reports whether client may use the gateway at all.
func (g *Gateway) allowed(client netip.Addr) bool {
	return client.IsValid() && contains(g.allow, client)
}

// ParseForwardedFor returns the client address for a request from peer that
// carries the X-Forwarded-For header values header.
//
// The header is believed only as far as trusted proxies wrote it: if peer
// is not in trusted, the result is peer. Otherwise the entries are read from
// the right (the last value's last entry was written by peer) and the first
// address not in trusted is the result. If every entry is trusted, or an
// entry is not an address (so no trusted proxy wrote it), the result is the
// last trusted address read: that host sent the request itself.
func ParseForwardedFor(peer netip.Addr, header []string, trusted []netip.Prefix) netip.Addr {
	peer = normalize(peer)
	if !contains(trusted, peer) {
		return peer
	}
	client := peer
	for i := len(header) - 1; i >= 0; i-- {
		v := header[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				v, entry = v[:j], v[j+1:]
			} else {
				v, entry = "", v
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue // "a,,b" or a trailing comma: no hop wrote it
			}
			a := parseForwardedAddr(entry)
			if !a.IsValid() {
				return client
			}
			client = a
			if !contains(trusted, a) {
				return a
			}
		}
	}
	return client
}

// parseForwardedAddr parses one X-Forwarded-For entry: an address, an
// address with a port ("192.0.2.1:80", "[2001:db8::1]:80"), or a bracketed
// IPv6 address. It returns the zero Addr if entry is none of those.
func parseForwardedAddr(entry string) netip.Addr {
	if a, err := netip.ParseAddr(entry); err == nil {
		return normalize(a)
	}
	if ap, err := netip.ParseAddrPort(entry); err == nil {
		return normalize(ap.Addr())
	}
	if len(entry) > 2 && entry[0] == '[' && entry[len(entry)-1] == ']' {
		if a, err := netip.ParseAddr(entry[1 : len(entry)-1]); err == nil {
			return normalize(a)
		}
	}
	return netip.Addr{}
}

// parseAddr parses a socket address as found in http.Request.RemoteAddr.
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a)
	}
	return netip.Addr{}
}

// normalize unmaps IPv4-in-IPv6 addresses and drops zones, which
// netip.Prefix.Contains would otherwise never match.
func normalize(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
