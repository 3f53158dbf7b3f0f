package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fingerprint is how spinbook prints a certificate's SHA-256.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// pin makes b trust exactly the certificate with fingerprint fp, as a
// person does who compares what up printed with what the browser shows.
func pin(b *browser, fp string) {
	b.Client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{
		InsecureSkipVerify: true, // replaced by the check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || fingerprint(raw[0]) != fp {
				return errors.New("certificate fingerprint differs from the one up printed")
			}
			return nil
		},
	}
}

// TestTLSSelfSigned: with access.tls: self-signed the front door speaks
// https with the certificate whose fingerprint up printed, keeps it across
// restarts, redirects plain http, and the session cookie is __Host- and
// Secure; kernels work over wss.
func TestTLSSelfSigned(t *testing.T) {
	w := newWorldPorts(t, "access:\n  tls: self-signed\n", abusePorts)
	s := w.up("tess")
	if !strings.HasPrefix(s.URL, "https://") || len(s.TLSFingerprint) != 95 {
		t.Fatalf("up --json = %+v, want an https URL and a SHA-256 fingerprint", s)
	}
	if !strings.HasPrefix(s.HealthURL, "http://") {
		t.Errorf("health URL %s: the health port stays plain http", s.HealthURL)
	}
	b := newBrowser(t, s.URL, "")
	pin(b, s.TLSFingerprint)

	resp := b.do(t, http.MethodGet, "/spinbook/login", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("login page over https: %s", resp.Status)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("certificate key %T, want ECDSA", leaf.PublicKey)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not name 127.0.0.1: %v", err)
	}

	resp = b.login(t, s.Password)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login over https: %s", resp.Status)
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		c = k
	}
	if c == nil || c.Name != "__Host-spinbook-tess" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
		t.Fatalf("session cookie %+v, want __Host-spinbook-tess, Secure, HttpOnly, Path=/", c)
	}

	t.Run("plain http is redirected", func(t *testing.T) {
		plain := newBrowser(t, strings.Replace(s.URL, "https://", "http://", 1), "")
		resp := plain.do(t, http.MethodGet, "/tree?x=1", nil, nil)
		if want := s.URL + "tree?x=1"; resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
			t.Errorf("GET over http: %s Location %q, want 307 to %s", resp.Status, resp.Header.Get("Location"), want)
		}
	})

	t.Run("kernel over wss", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		conn, _, err := dialKernel(ctx, b, startKernel(t, b), b.origin())
		if err != nil {
			t.Fatalf("kernel websocket over wss: %v", err)
		}
		defer conn.CloseNow()
		if got := execute(ctx, t, conn, "print(6*7)"); got != "42\n" {
			t.Fatalf("print(6*7) printed %q", got)
		}
		conn, resp, err := dialKernel(ctx, b, startKernel(t, b), strings.Replace(b.origin(), "https", "http", 1))
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("wss with an http Origin: %v, want 403", err)
		}
	})

	t.Run("the certificate is kept across restarts", func(t *testing.T) {
		if r := w.run("down", "--user", "tess"); r.code != 0 {
			t.Fatalf("down: %s", r)
		}
		again := w.up("tess")
		if again.TLSFingerprint != s.TLSFingerprint {
			t.Errorf("fingerprint after down and up %s, want %s", again.TLSFingerprint, s.TLSFingerprint)
		}
		r := w.run("up", "--user", "tess")
		if r.code != 0 || !strings.Contains(r.stdout, "fingerprint: "+s.TLSFingerprint) {
			t.Errorf("up must print the fingerprint: %s", r)
		}
	})
}

// TestTLSOwnCertificate: access.tls with cert and key files (the key as a
// ${file:} reference) serves that certificate; a mismatched pair is a
// config error before anything starts.
func TestTLSOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	writePair := func(name string) (certPath, keyPath string, der []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, _ = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
		return certPath, keyPath, der
	}
	certA, keyA, derA := writePair("a")
	_, keyB, _ := writePair("b")

	bad := newWorldPorts(t, fmt.Sprintf("access:\n  tls: {cert: %s, key: %s}\n", certA, keyB), abusePorts)
	if r := bad.run("up", "--user", "victor"); r.code != 2 || !strings.Contains(r.stderr, "access.tls") {
		t.Errorf("a certificate with another key's file: %s, want exit 2 naming access.tls", r)
	}

	w := newWorldPorts(t, fmt.Sprintf("access:\n  tls:\n    cert: %s\n    key: ${file:%s}\n", certA, keyA), abusePorts)
	s := w.up("victor")
	if s.TLSFingerprint != fingerprint(derA) {
		t.Fatalf("fingerprint %s, want the configured certificate's %s", s.TLSFingerprint, fingerprint(derA))
	}
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(derA)
	pool.AddCert(leaf)
	b := newBrowser(t, s.URL, "")
	b.Client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with a verified certificate: %s", resp.Status)
	}
	key, _ := os.ReadFile(keyA)
	logs := w.run("logs", "--user", "victor").stdout
	if strings.Contains(logs, strings.Split(string(key), "\n")[1]) {
		t.Error("the private key reached the server log")
	}
}
