package local

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/tlscert"
)

// restart stops rec's agent, whose access settings (password, allowlist,
// trusted proxies, TLS) differ from spec's, and starts a new one: its
// sessions live in the old agent's memory, so they all end. The caller
// holds the lock.
func (l *Local) restart(ctx context.Context, spec backend.Spec, rec *record, progress func(backend.Event)) (backend.Server, error) {
	progress(backend.Event{Message: "the access settings (password, allowlist, trusted proxies or TLS) changed; restarting the server so that they take effect and old sessions end"})
	l.stopAgent(ctx, rec, progress)
	l.cleanup(spec.User, rec)
	return l.start(ctx, spec, progress)
}

// recordTLS notes in rec, and its file, the fingerprint of the
// certificate the agent serves: the one in the spec, or the self-signed
// one it keeps in the server's directory (made by now: it is ready).
func (l *Local) recordTLS(rec *record, as backend.AgentSpec) error {
	var fp string
	var err error
	switch {
	case as.TLSSelfSigned:
		var data []byte
		if data, err = readOwned(filepath.Join(as.StateDir, tlscert.CertFile)); err == nil {
			fp, err = tlscert.Fingerprint(data)
		}
	case as.TLSCert != "":
		fp, err = tlscert.Fingerprint([]byte(as.TLSCert))
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("tls certificate fingerprint: %w", err)
	}
	rec.TLSFingerprint = fp
	return l.writeRecord(rec)
}

// frontScheme is the scheme of rec's front door.
func frontScheme(rec *record) string {
	if rec.TLS {
		return "https"
	}
	return "http"
}
