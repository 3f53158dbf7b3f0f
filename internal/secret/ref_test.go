package secret

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const canary = "canary-7f3a9c-secret-value"

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	os.WriteFile(file, []byte(canary+"\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("SPINBOOK_TEST_SECRET", canary)

	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
		missing bool
	}{
		{name: "literal", in: "plain-value", want: "plain-value"},
		{name: "env", in: "${env:SPINBOOK_TEST_SECRET}", want: canary},
		{name: "file trims newline", in: "${file:" + file + "}", want: canary},
		{name: "missing env", in: "${env:SPINBOOK_TEST_UNSET}", wantErr: "${env:SPINBOOK_TEST_UNSET}", missing: true},
		{name: "missing file", in: "${file:" + dir + "/nope}", wantErr: "no such file", missing: true},
		{name: "empty file", in: "${file:" + empty + "}", wantErr: "empty", missing: true},
		{name: "unknown kind", in: "${vault:x}", wantErr: "unknown kind"},
		{name: "unclosed", in: "${env:X", wantErr: "closing"},
		{name: "no name", in: "${env:}", wantErr: "want ${env:NAME}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(t.Context(), tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			if errors.Is(err, ErrMissing) != tt.missing {
				t.Errorf("errors.Is(err, ErrMissing) = %v, want %v", !tt.missing, tt.missing)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestRedactorLogsAndWriter(t *testing.T) {
	var r Redactor
	r.Add(canary, "ab") // too short to redact
	var buf bytes.Buffer
	log := slog.New(r.Handler(slog.NewTextHandler(&buf, nil)))
	log.Info("token is "+canary, "err", fmt.Errorf("clone https://x:%s@host: failed", canary),
		"plain", canary, slog.Group("g", "inner", canary))
	log.With("pre", canary).Info("with", "short", "ab")
	w := r.Writer(&buf)
	fmt.Fprintf(w, "first part %s", canary[:5])
	fmt.Fprintf(w, "%s rest\nlast %s", canary[5:], canary)
	w.Close()
	if strings.Contains(buf.String(), canary) {
		t.Fatalf("a secret got through:\n%s", buf.String())
	}
	if n := strings.Count(buf.String(), Redacted); n != 7 {
		t.Fatalf("got %d redactions, want 7:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "short=ab") {
		t.Fatal("short values must be left alone")
	}
}
