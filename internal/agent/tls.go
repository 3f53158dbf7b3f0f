package agent

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/spinbook/spinbook/internal/tlscert"
)

// tlsConfig returns the front door's TLS configuration and the SHA-256
// fingerprint of its certificate, or nil when the spec asks for plain
// HTTP. frontAddr is the front door's address, which a self-signed
// certificate names.
func (a *Agent) tlsConfig(frontAddr string) (*tls.Config, string, error) {
	var cert tls.Certificate
	switch {
	case a.spec.TLSSelfSigned:
		if a.spec.StateDir == "" {
			return nil, "", fmt.Errorf("tls: a self-signed certificate needs a state directory to keep it in")
		}
		c, made, err := tlscert.SelfSigned(a.spec.StateDir, tlscert.Hosts(frontAddr), time.Now())
		if err != nil {
			return nil, "", fmt.Errorf("tls: %w", err)
		}
		if made {
			a.log.Info("made a self-signed certificate", "dir", a.spec.StateDir)
		}
		cert = c
	case a.spec.TLSCert != "" || a.spec.TLSKey != "":
		c, err := tls.X509KeyPair([]byte(a.spec.TLSCert), []byte(a.spec.TLSKey))
		if err != nil {
			// The error names no key material.
			return nil, "", fmt.Errorf("tls: certificate and key: %w", err)
		}
		cert = c
	default:
		return nil, "", nil
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: websockets upgrade over it, and the gateway's
		// proxy and limits are written for it.
		NextProtos: []string{"http/1.1"},
	}
	return cfg, tlscert.FingerprintDER(cert.Certificate[0]), nil
}
