// Package tlscert makes and keeps the self-signed certificate of a
// server's front door (access.tls: self-signed), and computes the
// fingerprint people compare with what their browser shows.
package tlscert

import (
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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/atomicfile"
)

// The files SelfSigned keeps in its directory.
const (
	CertFile = "tls-cert.pem"
	KeyFile  = "tls-key.pem" // 0600
)

const (
	// validity is how long a new self-signed certificate is valid.
	validity = 2 * 365 * 24 * time.Hour
	// renewBefore: a certificate that expires sooner is made anew.
	renewBefore = 30 * 24 * time.Hour
)

// SelfSigned returns the self-signed certificate kept in dir, making it
// (an ECDSA P-256 key, valid for two years) if there is none, if it
// expires within 30 days, or if it does not name every one of hosts (IP
// addresses or DNS names). So its fingerprint stays the same from one
// start of a server to the next. made reports whether it was made now.
func SelfSigned(dir string, hosts []string, now time.Time) (cert tls.Certificate, made bool, err error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && covers(c.Leaf, hosts, now) {
		return c, false, nil
	}
	certPEM, keyPEM, err := generate(hosts, now)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("self-signed certificate: %w", err)
	}
	return cert, true, nil
}

// covers reports whether leaf is valid for a while yet and names every
// host.
func covers(leaf *x509.Certificate, hosts []string, now time.Time) bool {
	if leaf == nil || now.Before(leaf.NotBefore) || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(leaf.DNSNames, strings.ToLower(h)) {
			return false
		}
	}
	return true
}

// generate makes a self-signed server certificate for hosts.
func generate(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "spinbook front door", Organization: []string{"spinbook"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, strings.ToLower(h))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFile replaces path with data, atomically.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	return nil
}

// Fingerprint is the SHA-256 of the first certificate in certPEM (the
// server's own), as browsers show it: upper-case hex pairs joined by ':'.
func Fingerprint(certPEM []byte) (string, error) {
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return "", errors.New("no certificate in the PEM data")
		}
		if b.Type == "CERTIFICATE" {
			return FingerprintDER(b.Bytes), nil
		}
	}
}

// FingerprintDER is Fingerprint of one DER-encoded certificate.
func FingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// Pinned is a client TLS configuration that accepts only the certificate
// whose Fingerprint is fingerprint (a self-signed front door's, as the
// backend recorded it), whatever its issuer or names.
func Pinned(fingerprint string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // checked by VerifyConnection against the fingerprint
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server showed no certificate")
			}
			if got := FingerprintDER(cs.PeerCertificates[0].Raw); !strings.EqualFold(got, fingerprint) {
				return fmt.Errorf("the server's certificate (SHA-256 %s) is not the certificate recorded for this server (%s)", got, fingerprint)
			}
			return nil
		},
	}
}

// FingerprintFile is Fingerprint of the certificate file dir/CertFile, as
// SelfSigned keeps it.
func FingerprintFile(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return "", fmt.Errorf("read certificate: %w", err)
	}
	return Fingerprint(data)
}

// Hosts are the names a front door listening on addr (host:port) is
// reached by: its address, or for an unspecified one (0.0.0.0, ::) this
// machine's host name (not its interface addresses, which come and go and
// would change the certificate); and always localhost and the loopback
// addresses.
func Hosts(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	add := func(h string) {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		if ip != nil {
			host = ip.String()
		}
		add(host)
		return hosts
	}
	if name, err := os.Hostname(); err == nil {
		add(strings.ToLower(name))
	}
	return hosts
}
