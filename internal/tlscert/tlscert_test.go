package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedIsKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "server")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	hosts := []string{"localhost", "127.0.0.1", "::1", "nb.example"}

	first, made, err := SelfSigned(dir, hosts, now)
	if err != nil || !made {
		t.Fatalf("first SelfSigned: made %v, err %v", made, err)
	}
	leaf := first.Leaf
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if got := leaf.DNSNames; len(got) != 2 || got[0] != "localhost" || got[1] != "nb.example" {
		t.Errorf("DNS names %q", got)
	}
	if len(leaf.IPAddresses) != 2 {
		t.Errorf("IP addresses %v", leaf.IPAddresses)
	}
	if leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.NotAfter.Sub(now) < 700*24*time.Hour {
		t.Errorf("usage %v, not after %v", leaf.ExtKeyUsage, leaf.NotAfter)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	fp, err := FingerprintFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.Raw)
	if want := strings.ToUpper(hex.EncodeToString(sum[:])); strings.ReplaceAll(fp, ":", "") != want || len(fp) != 95 {
		t.Errorf("fingerprint %s, want %s in pairs", fp, want)
	}

	// Started again, even a year later: the same certificate.
	again, made, err := SelfSigned(dir, hosts[:2], now.Add(365*24*time.Hour))
	if err != nil || made {
		t.Fatalf("second SelfSigned: made %v, err %v", made, err)
	}
	if FingerprintDER(again.Leaf.Raw) != fp {
		t.Error("the fingerprint changed between starts")
	}

	// A new host, or an expiry within 30 days: a new certificate.
	for name, c := range map[string]struct {
		hosts []string
		at    time.Time
	}{
		"new host":     {append(hosts, "10.1.2.3"), now},
		"expires soon": {hosts, now.Add(validity - 10*24*time.Hour)},
	} {
		renewed, made, err := SelfSigned(dir, c.hosts, c.at)
		if err != nil || !made || FingerprintDER(renewed.Leaf.Raw) == fp {
			t.Errorf("%s: made %v, err %v; want a new certificate", name, made, err)
		}
		fp = FingerprintDER(renewed.Leaf.Raw)
	}
}

func TestFingerprintRefusesNonCertificates(t *testing.T) {
	for _, in := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if fp, err := Fingerprint([]byte(in)); err == nil {
			t.Errorf("Fingerprint(%q) = %s, want an error", in, fp)
		}
	}
}

func TestHosts(t *testing.T) {
	got := Hosts("192.0.2.10:8800")
	if strings.Join(got, ",") != "localhost,127.0.0.1,::1,192.0.2.10" {
		t.Errorf("Hosts(192.0.2.10:8800) = %q", got)
	}
	name, _ := os.Hostname()
	got = Hosts("[::]:8800")
	if name != "" && got[len(got)-1] != strings.ToLower(name) {
		t.Errorf("Hosts([::]:8800) = %q, want the host name %s last", got, name)
	}
}

// TestPinned: a client with Pinned reaches the server whose certificate
// has the fingerprint (in either case of hex) and no other.
func TestPinned(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	get := func(fp string) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: Pinned(fp)}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	fp := FingerprintDER(srv.Certificate().Raw)
	if err := get(fp); err != nil {
		t.Errorf("the pinned certificate was refused: %v", err)
	}
	if err := get(strings.ToLower(fp)); err != nil {
		t.Errorf("the pinned certificate, in lower case, was refused: %v", err)
	}
	other := strings.Repeat("00:", 31) + "00"
	if err := get(other); err == nil || !strings.Contains(err.Error(), "not the certificate recorded") {
		t.Errorf("another fingerprint: got %v, want the certificate refused", err)
	}
	if err := get(""); err == nil {
		t.Error("an empty fingerprint accepted a certificate")
	}
}
