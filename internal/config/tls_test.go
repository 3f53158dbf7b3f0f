package config

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTLS(t *testing.T) {
	home := hermetic(t)
	tests := []struct {
		name string
		yaml string
		want TLS
	}{
		{name: "left out", yaml: "access: {}", want: TLS{}},
		{name: "null", yaml: "access:\n  tls:\n", want: TLS{}},
		{name: "self-signed", yaml: "access:\n  tls: self-signed\n", want: TLS{SelfSigned: true}},
		{name: "files", yaml: "access:\n  tls: {cert: ~/tls/cert.pem, key: /etc/k.pem}\n",
			want: TLS{Cert: filepath.Join(home, "tls/cert.pem"), Key: "/etc/k.pem"}},
		{name: "key reference", yaml: "access:\n  tls: {cert: /etc/c.pem, key: '${env:TLS_KEY}'}\n",
			want: TLS{Cert: "/etc/c.pem", Key: "${env:TLS_KEY}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "spinbook.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Access.TLS); diff != "" {
				t.Errorf("TLS (-want +got):\n%s", diff)
			}
			if c.Access.TLS.Enabled() != (tt.want != TLS{}) {
				t.Errorf("Enabled() = %v", c.Access.TLS.Enabled())
			}
		})
	}
}
