package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/spinbook/spinbook/internal/secret"
)

// TLS says whether the front door serves HTTPS, and with which
// certificate. In YAML it is either the word self-signed, or a mapping
// with cert and key. Left out: plain HTTP.
//
//	tls: self-signed            # a certificate made once per server
//	tls: {cert: /etc/nb/cert.pem, key: ${file:/etc/nb/key.pem}}
type TLS struct {
	// Cert is the PEM file with the server's certificate (and its chain):
	// an absolute path or one starting with ~/.
	Cert string `yaml:"cert"`

	// Key is the PEM file with the certificate's private key (an absolute
	// path or one starting with ~/), or a secret reference
	// (${env:NAME}, ${file:PATH}) whose value is the PEM key itself.
	Key string `yaml:"key"`

	// SelfSigned is true for `tls: self-signed`: each server makes an
	// ECDSA certificate once, keeps it in its state directory, and `up`
	// prints its SHA-256 fingerprint.
	SelfSigned bool `yaml:"-"`
}

// selfSigned is the one-word form of access.tls.
const selfSigned = "self-signed"

// Enabled reports whether the front door serves HTTPS.
func (t TLS) Enabled() bool { return t.SelfSigned || t.Cert != "" || t.Key != "" }

// UnmarshalYAML reads `self-signed` or a mapping {cert, key}. (The config
// decoder walks the mapping itself, to report unknown keys with lines.)
func (t *TLS) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch {
	case isNull(n):
		*t = TLS{}
	case n.Kind == yaml.ScalarNode && n.Value == selfSigned:
		*t = TLS{SelfSigned: true}
	case n.Kind == yaml.ScalarNode:
		return fmt.Errorf("%q is not a TLS setting: write %s, or a mapping {cert: FILE, key: FILE}", n.Value, selfSigned)
	case n.Kind == yaml.MappingNode:
		var m struct {
			Cert string `yaml:"cert"`
			Key  string `yaml:"key"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		*t = TLS{Cert: m.Cert, Key: m.Key}
	default:
		return fmt.Errorf("expected %s or a mapping {cert: FILE, key: FILE}, not %s", selfSigned, describe(n))
	}
	return nil
}

// tls checks access.tls and expands ~ in its paths.
func (v *validation) tls() {
	t := &v.c.Access.TLS
	if t.SelfSigned || !t.Enabled() {
		return
	}
	if t.Cert == "" {
		v.problemf("access.tls", "key without cert: give both, or write `tls: %s`", selfSigned)
	} else if dir, msg := expandFile(t.Cert); msg != "" {
		v.problemf("access.tls.cert", "%q: %s", t.Cert, msg)
	} else {
		t.Cert = dir
	}

	switch _, isRef, _ := secret.ParseRef(t.Key); {
	case t.Key == "":
		if t.Cert != "" {
			v.problemf("access.tls", "cert without key: give both, or write `tls: %s`", selfSigned)
		}
	case isRef:
		// Checked with the other secrets (Config.Secrets), and resolved
		// when a server starts.
	case strings.Contains(t.Key, "PRIVATE KEY"):
		// Never quote it: it is a key pasted into the config.
		v.problemf("access.tls.key", "this is a private key written into the config; put it in a file and give its path, or a ${file:PATH} reference")
	default:
		if p, msg := expandFile(t.Key); msg != "" {
			v.problemf("access.tls.key", "%s: %s", quoteStart(t.Key), msg)
		} else {
			t.Key = p
		}
	}
}

// expandFile expands a leading ~/ and requires an absolute path that does
// not end in a slash.
func expandFile(path string) (string, string) {
	if strings.HasSuffix(path, "/") {
		return "", "want a file, not a directory"
	}
	p, msg := expandDir(path)
	if msg != "" {
		return "", msg
	}
	return filepath.Clean(p), ""
}
