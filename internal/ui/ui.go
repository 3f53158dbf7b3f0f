// Package ui prints what the command line shows people: progress lines on
// stderr, tables and JSON on stdout.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Progress prints progress lines for one long operation, each with the time
// since it began, so a person can see that something is happening.
type Progress struct {
	w     io.Writer
	began time.Time
}

// NewProgress starts a progress report on w (normally stderr).
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, began: time.Now()}
}

// Step prints one progress line.
func (p *Progress) Step(msg string) {
	fmt.Fprintf(p.w, "  %5.1fs  %s\n", time.Since(p.began).Seconds(), msg)
}

// Table prints rows under header, aligned in columns.
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// JSON prints v as indented JSON with a trailing newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Duration prints d the way people read uptimes: 45s, 12m, 3h05m, 2d04h.
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
