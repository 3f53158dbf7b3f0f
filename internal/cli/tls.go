package cli

import (
	"crypto/tls"
	"fmt"
	"os"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// tlsSpec fills spec's TLS fields from access.tls: the certificate file
// and the key (a file, or a secret already resolved) are read now, so
// that a missing or mismatched pair is a config error (exit 2) before
// anything starts, and so that the agent needs no access to these files.
// Errors name the files, never key material.
func tlsSpec(t config.TLS, secrets *resolvedSecrets, spec *backend.AgentSpec) error {
	switch {
	case t.SelfSigned:
		spec.TLSSelfSigned = true
		return nil
	case !t.Enabled():
		return nil
	}
	cert, err := os.ReadFile(t.Cert)
	if err != nil {
		return usagef("access.tls.cert: %v", err)
	}
	key, fromSecret := secrets.byPath["access.tls.key"]
	if !fromSecret {
		data, err := os.ReadFile(t.Key)
		if err != nil {
			return usagef("access.tls.key: %v", err)
		}
		key = string(data)
	}
	if _, err := tls.X509KeyPair(cert, []byte(key)); err != nil {
		return usagef("access.tls: the certificate %s and its key do not make a usable pair: %v", t.Cert, err)
	}
	spec.TLSCert, spec.TLSKey = string(cert), key
	if !fromSecret {
		spec.Secrets = append(spec.Secrets, key) // redacted by the agent like the others
	}
	return nil
}

// printTLS says, after the URL, how to recognise the server's certificate.
func (e *env) printTLS(srv backend.Server) {
	if srv.TLSFingerprint == "" {
		return
	}
	fmt.Fprintf(e.stdout, "TLS certificate SHA-256 fingerprint: %s\n", srv.TLSFingerprint)
}
