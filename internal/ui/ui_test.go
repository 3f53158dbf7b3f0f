package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"seconds", 45 * time.Second, "45s"},
		{"minutes", 12*time.Minute + 30*time.Second, "12m"},
		{"hours", 3*time.Hour + 5*time.Minute, "3h05m"},
		{"days", 52 * time.Hour, "2d04h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Duration(tt.in); got != tt.want {
				t.Errorf("Duration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTableAligns(t *testing.T) {
	var b bytes.Buffer
	Table(&b, []string{"USER", "STATE"}, [][]string{{"alice", "running"}, {"bo", "absent"}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), b.String())
	}
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("column not aligned at %d in %q", col, l)
		}
	}
}
