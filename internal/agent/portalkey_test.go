package agent

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
)

func TestParsePortalKey(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, in string
		want     ed25519.PublicKey
		bad      bool
	}{
		{"none", "", nil, false},
		{"a key", base64.StdEncoding.EncodeToString(pub), pub, false},
		{"too short", base64.StdEncoding.EncodeToString(pub[:31]), nil, true},
		{"not base64", "!!!", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parsePortalKey(c.in)
			if (err != nil) != c.bad || !got.Equal(c.want) && !(got == nil && c.want == nil) {
				t.Errorf("parsePortalKey(%q) = %x, %v", c.in, got, err)
			}
		})
	}
}
