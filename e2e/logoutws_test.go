package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestLogoutClosesKernelWebsocket: against a real Jupyter, logging out
// closes the kernel websocket the session opened (before, it stayed open
// and kept running cells after the logout); another session's stays.
func TestLogoutClosesKernelWebsocket(t *testing.T) {
	w := newWorldPorts(t, "", busyPorts)
	s := w.up("lou")
	b, other := loggedIn(t, s), loggedIn(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	kernel := startKernel(t, b)
	mine := dialKernelOffering(ctx, t, b, kernel)
	defer mine.CloseNow()
	theirs := dialKernelOffering(ctx, t, other, kernel)
	defer theirs.CloseNow()
	if out := execute(ctx, t, mine, "print(6*7)"); out != "42\n" {
		t.Fatalf("before the logout the cell printed %q", out)
	}

	resp := b.do(t, http.MethodPost, "/spinbook/logout", nil, map[string]string{"Origin": b.origin()})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	readCtx, cancelRead := context.WithTimeout(ctx, 20*time.Second)
	defer cancelRead()
	for {
		if _, _, err := mine.Read(readCtx); err != nil {
			if readCtx.Err() != nil {
				t.Fatal("the kernel websocket of the logged-out session is still open 20s after the logout")
			}
			break
		}
	}
	if out := execute(ctx, t, theirs, "print(6*7)"); out != "42\n" {
		t.Errorf("the other session's websocket after the logout: the cell printed %q", out)
	}
}
