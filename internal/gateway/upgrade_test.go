package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialVia opens a websocket through the gateway served at srv, as the
// holder of cookie, and checks that it echoes.
func dialVia(t *testing.T, srv *httptest.Server, path, cookie string) *websocket.Conn {
	t.Helper()
	host := srv.Listener.Addr().String()
	c, _, err := websocket.Dial(t.Context(), "ws://"+host+path, &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"http://" + host}, "Cookie": {cookie}},
	})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	echo(t, c, "hello")
	return c
}

// echo sends msg on c and reads it back.
func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v; want %q", got, err, msg)
	}
}

// waitClosed waits until the peer of c closes it.
func waitClosed(t *testing.T, c *websocket.Conn, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: still open after 10s", what)
			}
			return
		}
	}
}

// TestSessionEndClosesWebsockets: the websockets a session opened
// (kernel and terminal) close when it logs out, logs in anew, or
// expires; another session's stay open; a message on a websocket uses
// its session as a request does.
func TestSessionEndClosesWebsockets(t *testing.T) {
	const ttl = 2 * time.Second
	tests := []struct {
		name string
		end  func(t *testing.T, e *testEnv, cookie string)
	}{
		{"logout", func(t *testing.T, e *testEnv, cookie string) {
			r := httptest.NewRequest(http.MethodPost, "/spinbook/logout", nil)
			r.Header.Set("Cookie", cookie)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			if got := e.serve(r).StatusCode; got != http.StatusSeeOther {
				t.Fatalf("logout: status %d", got)
			}
		}},
		{"new login", func(t *testing.T, e *testEnv, cookie string) {
			r := loginRequest(testPassword, "/")
			r.Header.Set("Cookie", cookie)
			if got := e.serve(r).StatusCode; got != http.StatusSeeOther {
				t.Fatalf("login: status %d", got)
			}
		}},
		{"expiry", func(t *testing.T, e *testEnv, cookie string) {
			e.clock.Advance(ttl + time.Second) // the check runs ttl after the last use
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.SessionTTL = ttl })
			srv := httptest.NewServer(e.g)
			t.Cleanup(srv.Close)
			cookie, other := e.login(t), e.login(t)
			kernel := dialVia(t, srv, "/api/kernels/k1/channels?session_id=s", cookie)
			terminal := dialVia(t, srv, "/terminals/websocket/1", cookie)
			kept := dialVia(t, srv, "/api/kernels/k1/channels?session_id=t", other)

			tt.end(t, e, cookie)
			waitClosed(t, kernel, "the kernel websocket of the ended session")
			waitClosed(t, terminal, "the terminal websocket of the ended session")
			if tt.name != "expiry" {
				echo(t, kept, "still here") // the other session's is open
			}
		})
	}

	t.Run("a message uses the session", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.SessionTTL = time.Hour })
		srv := httptest.NewServer(e.g)
		t.Cleanup(srv.Close)
		cookie := e.login(t)
		c := dialVia(t, srv, "/terminals/websocket/1", cookie)
		e.clock.Advance(50 * time.Minute)
		echo(t, c, "ls\r")
		_, id, _ := strings.Cut(cookie, "=")
		e.clock.Advance(50 * time.Minute) // 100 minutes after the login
		if _, ok := e.g.sessions.expiry(sessionKey(id), e.clock.Now()); !ok {
			t.Errorf("the session expired an hour after the login although its websocket was used")
		}
	})
}
