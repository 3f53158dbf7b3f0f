package gateway

import (
	"net/netip"
	"strings"
	"testing"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fd00::/8"),
}

func TestParseForwardedFor(t *testing.T) {
	tests := []struct {
		name   string
		peer   string
		header []string
		want   string
	}{
		{name: "untrusted peer", peer: "203.0.113.1", header: []string{"198.51.100.1"}, want: "203.0.113.1"},
		{name: "no header", peer: "10.0.0.1", want: "10.0.0.1"},
		{name: "empty header", peer: "10.0.0.1", header: []string{""}, want: "10.0.0.1"},
		{name: "one hop", peer: "10.0.0.1", header: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "spoofed left entries ignored", peer: "10.0.0.1", header: []string{"127.0.0.1, 10.0.0.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of proxies", peer: "10.0.0.1", header: []string{"127.0.0.1, 198.51.100.1, 192.168.1.1, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "several header lines", peer: "10.0.0.1", header: []string{"127.0.0.1", "198.51.100.1, 10.0.0.2"}, want: "198.51.100.1"},
		{name: "all trusted", peer: "10.0.0.1", header: []string{"192.168.1.1, 10.0.0.2"}, want: "192.168.1.1"},
		{name: "garbage after trusted", peer: "10.0.0.1", header: []string{"198.51.100.1, unknown, 10.0.0.2"}, want: "10.0.0.2"},
		{name: "garbage right-most", peer: "10.0.0.1", header: []string{"198.51.100.1, _hidden"}, want: "10.0.0.1"},
		{name: "empty entries skipped", peer: "10.0.0.1", header: []string{"198.51.100.1,, ,"}, want: "198.51.100.1"},
		{name: "spaces", peer: "10.0.0.1", header: []string{"  198.51.100.1\t"}, want: "198.51.100.1"},
		{name: "with port", peer: "10.0.0.1", header: []string{"198.51.100.1:4711"}, want: "198.51.100.1"},
		{name: "ipv6", peer: "fd00::1", header: []string{"2001:db8::1"}, want: "2001:db8::1"},
		{name: "ipv6 bracketed", peer: "fd00::1", header: []string{"[2001:db8::1]"}, want: "2001:db8::1"},
		{name: "ipv6 with port", peer: "fd00::1", header: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "mapped trusted entry", peer: "10.0.0.1", header: []string{"198.51.100.1, ::ffff:10.0.0.2"}, want: "198.51.100.1"},
		{name: "mapped peer", peer: "::ffff:10.0.0.1", header: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "zone dropped", peer: "fd00::1%eth0", header: []string{"fe80::1%eth0"}, want: "fe80::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseForwardedFor(netip.MustParseAddr(tt.peer), tt.header, testTrusted)
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("ParseForwardedFor(%s, %q) = %v, want %s", tt.peer, tt.header, got, tt.want)
			}
		})
	}
}

// FuzzParseForwardedFor checks that the client is the peer or an address
// from the header, and a trusted proxy only if the header read from the
// right holds nothing but trusted proxies (up to an unparsable entry).
// header is split on newlines into header lines. Seeds are in
// testdata/fuzz/FuzzParseForwardedFor.
func FuzzParseForwardedFor(f *testing.F) {
	f.Fuzz(func(t *testing.T, peerText, header string) {
		peer, err := netip.ParseAddr(peerText)
		if err != nil {
			return
		}
		peer = normalize(peer)
		lines := strings.Split(header, "\n")
		got := ParseForwardedFor(peer, lines, testTrusted)

		var entries []netip.Addr // right to left, up to the first unparsable
		complete := true
	read:
		for i := len(lines) - 1; i >= 0; i-- {
			parts := strings.Split(lines[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				p := strings.TrimSpace(parts[j])
				if p == "" {
					continue
				}
				a := parseForwardedAddr(p)
				if !a.IsValid() {
					complete = false
					break read
				}
				entries = append(entries, a)
			}
		}

		if !contains(testTrusted, peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v: got %v", peer, got)
			}
			return
		}
		if got != peer && !containsAddr(entries, got) {
			t.Fatalf("got %v: neither peer %v nor in header %q", got, peer, lines)
		}
		if contains(testTrusted, got) {
			for _, a := range entries {
				if !contains(testTrusted, a) {
					t.Fatalf("got trusted %v although %v (untrusted) is in header %q", got, a, lines)
				}
			}
			// Everything read is trusted: the answer is the left-most of it.
			want := peer
			if len(entries) > 0 {
				want = entries[len(entries)-1]
			}
			if got != want {
				t.Fatalf("all trusted (complete=%v): got %v, want %v", complete, got, want)
			}
		}
	})
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}
