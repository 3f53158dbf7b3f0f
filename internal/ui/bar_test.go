package ui

import (
	"bytes"
	"strings"
	"testing"
)

// TestBarPlainLines: off a terminal, a bar prints one line as each phase
// starts and one as it ends, with no carriage returns or escapes.
func TestBarPlainLines(t *testing.T) {
	var b bytes.Buffer
	bar := NewBar(&b, "churn/model.bin")
	bar.Start("checksum", 3_000_000)
	bar.Add(3_000_000)
	bar.Start("upload", 3_000_000)
	bar.Add(1_000_000)
	bar.Add(2_000_000)
	bar.Done()
	bar.Done() // a second Done prints nothing
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || strings.ContainsAny(b.String(), "\r\x1b") {
		t.Fatalf("got %q, want 4 plain lines", b.String())
	}
	for i, want := range []string{"checksum churn/model.bin (3.0 MB)", "checksum churn/model.bin: 3.0 MB in", "upload churn/model.bin (3.0 MB)", "upload churn/model.bin: 3.0 MB in"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], want)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{999: "999 B", 1500: "1.5 kB", 300_000_000: "300.0 MB", 1_073_741_824: "1.07 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
