package gateway

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestSanitizeNext(t *testing.T) {
	tests := []struct {
		next string
		want string
	}{
		// Kept.
		{"/", "/"},
		{"/lab", "/lab"},
		{"/lab/tree/dir/a%20b.ipynb?x=1&y=%2F#cell-3", "/lab/tree/dir/a%20b.ipynb?x=1&y=%2F#cell-3"},
		{"/tree?path=//x", "/tree?path=//x"}, // "//" in the query is not a path
		{"/a:b", "/a:b"},
		{"/%C3%A9t%C3%A9.ipynb", "/%C3%A9t%C3%A9.ipynb"},
		{"/files/a/../b", "/files/a/../b"}, // still this origin

		// Refused.
		{"", "/"},
		{"lab", "/"},
		{"//evil.example", "/"},
		{"///x", "/"},
		{`\\x`, "/"},
		{`/\x`, "/"},
		{`/x\y`, "/"},
		{"https:x", "/"},
		{"https://evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/\t/evil", "/"},
		{"/\r\n/evil", "/"},
		{"/\x00", "/"},
		{" /x", "/"},
		{"/a b", "/"},
		{"/%2f/evil", "/"},
		{"/%2F%2Fevil", "/"},
		{"%2F%2Fevil", "/"},
		{"/%5cevil", "/"},
		{"/%09/evil", "/"},
		{"/%0d%0aSet-Cookie:x", "/"},
		{"/%252f%252fevil", "/"},     // decodes twice
		{"/%25252f%25252fevil", "/"}, // decodes three times
		{"/%2525252fx", "/"},         // still encoded after three decodings
		{"/%zz", "/"},
		{"/a//b", "/"},
		{"/.//evil", "/"},
		{"/..%2f%2fevil", "/"},
		{`/"><script>alert(1)</script>`, "/"},
		{"/é", "/"},
		{"/logout", "/"},
		{"/%6cogout", "/"},
		{"/spinbook/logout", "/"},
		{"/spinbook", "/"},
		{"/" + strings.Repeat("a", maxNextLen), "/"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			got := SanitizeNext(tt.next)
			if got != tt.want {
				t.Errorf("SanitizeNext(%q) = %q, want %q", tt.next, got, tt.want)
			}
			if err := checkLocalTarget(got); err != nil {
				t.Errorf("SanitizeNext(%q) = %q: %v", tt.next, got, err)
			}
		})
	}
}

// FuzzSanitizeNext checks that whatever goes in, what comes out is a path
// on this origin. Seeds are in testdata/fuzz/FuzzSanitizeNext.
func FuzzSanitizeNext(f *testing.F) {
	f.Fuzz(func(t *testing.T, next string) {
		got := SanitizeNext(next)
		if err := checkLocalTarget(got); err != nil {
			t.Fatalf("SanitizeNext(%q) = %q: %v", next, got, err)
		}
		if got != "/" && got != next {
			t.Fatalf("SanitizeNext(%q) = %q: neither the input nor /", next, got)
		}
	})
}

// checkLocalTarget returns an error unless target is a path on the origin
// it is sent from, as written and after percent-decoding.
func checkLocalTarget(target string) error {
	u, err := url.Parse(target)
	switch {
	case err != nil:
		return err
	case u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil:
		return errors.New("not a path")
	}
	forms := []string{target}
	if d, err := url.PathUnescape(target); err == nil {
		forms = append(forms, d)
	}
	for _, s := range forms {
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, `/\`) {
			return errors.New("does not start with a single /")
		}
		if strings.ContainsAny(s, "\\\t\r\n") {
			return errors.New("backslash or control character")
		}
	}
	return nil
}
