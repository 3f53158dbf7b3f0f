package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The front door answers only its own names (Options.Hosts), so that a page
// on another site cannot reach it by DNS rebinding: a name the attacker
// controls, first resolving to the attacker's server and then to this one,
// makes the browser treat this server as the attacker's origin and send it
// "same-origin" requests (a login POST with a matching Origin) that pass
// the allowlist, since they come from an allowed person's browser. The
// Host of such a request is the attacker's name: it gets 421 Misdirected
// Request before any other check, and Jupyter sees nothing.
//
// Always answered besides Options.Hosts: "localhost", which browsers
// resolve to this machine themselves, and any IP address (literal, as in
// http://10.1.2.3:8888/ or http://[::1]:8888/), since an address involves no
// DNS and so cannot be rebound. The port of a Host is not compared: a
// rebinding page has the same port as the server anyway, and behind a
// load balancer, NodePort or published port the port the browser used is
// not the one the gateway listens on.

// normalizeHost turns a host name, as configured or as sent in a Host
// header without its port, into the form names are compared in: lower
// case, without a trailing dot, an IPv6 address without brackets. It
// reports false for anything that is neither a DNS name nor an IP address.
func normalizeHost(name string) (string, bool) {
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		a, err := netip.ParseAddr(name[1 : len(name)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		return a.String(), true
	}
	if a, err := netip.ParseAddr(name); err == nil {
		if a.Zone() != "" {
			return "", false
		}
		return a.String(), true
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !validDNSName(name) {
		return "", false
	}
	return name, true
}

// validDNSName reports whether name is a DNS name: dot-separated labels of
// letters, digits, '-' and '_', each 1 to 63 long, 253 in all.
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}

// NormalizeHost checks a host name for Options.Hosts (and access.hosts):
// a DNS name or an IP address, without scheme, port or path. It returns
// the name as the gateway compares it.
func NormalizeHost(name string) (string, error) {
	n, ok := normalizeHost(name)
	if !ok {
		return "", fmt.Errorf("%q is not a host name or IP address (example: notebooks.example.com; no scheme, port or path)", name)
	}
	return n, nil
}

// hostName is the name part of a Host header value: without its port, and
// normalized; false if the value is not host or host:port.
func hostName(host string) (string, bool) {
	if host == "" {
		return "", false
	}
	name := host
	if h, port, err := net.SplitHostPort(host); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", false
		}
		name = h
		if strings.Contains(h, ":") {
			name = "[" + h + "]" // net.SplitHostPort took the brackets off
		}
	} else if strings.Count(host, ":") > 0 && !strings.HasPrefix(host, "[") {
		// A bare IPv6 address is not a valid Host; anything else with a
		// colon that SplitHostPort refused is malformed.
		return "", false
	}
	return normalizeHost(name)
}

// hostAllowed reports whether the request's Host names this server.
func (g *Gateway) hostAllowed(r *http.Request) bool {
	return HostAllowed(r.Host, g.hosts)
}

// HostAllowed reports whether host, a Host header value, names one of
// names (as NormalizeHost returns them), "localhost" or an IP address:
// the front door's check, also made by the portal.
func HostAllowed(host string, names map[string]struct{}) bool {
	name, ok := hostName(host)
	if !ok {
		return false
	}
	if name == "localhost" {
		return true
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	_, ok = names[name]
	return ok
}

// misdirected answers a request whose Host is not one of the server's
// names.
func (g *Gateway) misdirected(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	g.log.Warn("foreign host refused", "client", addrString(client), "host", r.Host, "method", r.Method, "path", r.URL.Path)
	w.Header().Set("Connection", "close")
	g.writeMessage(w, http.StatusMisdirectedRequest, pageMisdirected, "")
}
