package ui

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// A Bar shows how far a transfer is on w (normally stderr): a bar redrawn
// in place on a terminal, otherwise one line as each phase starts and one
// as it ends. It is safe for concurrent use; call Done at the end.
type Bar struct {
	w     io.Writer
	label string
	tty   bool

	mu     sync.Mutex
	phase  string
	total  int64
	began  time.Time
	done   atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
	active bool
}

// NewBar returns a bar for the transfer named label.
func NewBar(w io.Writer, label string) *Bar {
	return &Bar{w: w, label: label, tty: IsTerminal(w)}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Start begins a phase ("checksum", "upload", "download") of total bytes,
// ending the one before.
func (b *Bar) Start(phase string, total int64) {
	b.Done()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.phase, b.total, b.began, b.active = phase, total, time.Now(), true
	b.done.Store(0)
	if !b.tty {
		fmt.Fprintf(b.w, "  %s %s (%s)\n", b.phase, b.label, Bytes(total))
		return
	}
	b.stop = make(chan struct{})
	b.wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.mu.Lock()
				b.draw()
				b.mu.Unlock()
			}
		}
	})
}

// Add reports n more bytes done.
func (b *Bar) Add(n int64) { b.done.Add(n) }

// Done ends the current phase with a final line.
func (b *Bar) Done() {
	b.mu.Lock()
	if !b.active {
		b.mu.Unlock()
		return
	}
	b.active = false
	stop := b.stop
	b.mu.Unlock()
	if stop != nil {
		close(stop)
		b.wg.Wait()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	elapsed := time.Since(b.began)
	done := b.done.Load()
	line := fmt.Sprintf("  %s %s: %s in %.1fs (%s/s)", b.phase, b.label, Bytes(done), elapsed.Seconds(), Bytes(rate(done, elapsed)))
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\x1b[K\n", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
	b.stop = nil
}

// draw redraws the bar in place; the caller holds b.mu.
func (b *Bar) draw() {
	done := b.done.Load()
	frac := 0.0
	if b.total > 0 {
		frac = min(float64(done)/float64(b.total), 1)
	}
	const width = 24
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if filled < width {
		bar = bar[:filled] + ">" + bar[filled+1:]
	}
	fmt.Fprintf(b.w, "\r  %-8s [%s] %3.0f%%  %s / %s  %s/s\x1b[K", b.phase, bar, frac*100,
		Bytes(done), Bytes(b.total), Bytes(rate(done, time.Since(b.began))))
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// Bytes prints a size the way people read it: 512 B, 1.5 kB, 300.0 MB, 1.07 GB
// (powers of 1000).
func Bytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
}
