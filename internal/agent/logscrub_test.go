package agent

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/secret"
)

// TestJupyterHeaderDumpScrubbed: the headers Jupyter dumps on a 5xx reach
// the server log without cookies or credentials.
func TestJupyterHeaderDumpScrubbed(t *testing.T) {
	dump := `[E 21:00:00.000 NotebookApp] {
  "Host": "127.0.0.1:8800",
  "Cookie": "_xsrf=2|cookie-secret-1; username-127-0-0-1-8800=\"2|1:0|10:17|cookie-secret-2\"",
  "authorization": "token upstream-secret-3",
  "X-Xsrftoken": "xsrf-secret-4",
  "Referer": "http://127.0.0.1:8800/notebooks/a.ipynb",
  "User-Agent": "Mozilla/5.0"
}
`
	var out bytes.Buffer
	lw := &lineWriter{w: &out, prefix: "jupyter: ", redact: &secret.Redactor{}}
	lw.Write([]byte(dump))
	got := out.String()
	for _, s := range []string{"cookie-secret-1", "cookie-secret-2", "upstream-secret-3", "xsrf-secret-4"} {
		if strings.Contains(got, s) {
			t.Errorf("log holds %q:\n%s", s, got)
		}
	}
	for _, want := range []string{
		`jupyter:   "Cookie": "[redacted]",`,
		`jupyter:   "authorization": "[redacted]",`,
		`jupyter:   "Host": "127.0.0.1:8800",`,
		`jupyter:   "Referer": "http://127.0.0.1:8800/notebooks/a.ipynb",`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
}
