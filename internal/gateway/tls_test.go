package gateway

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testCert returns a self-signed certificate for 127.0.0.1 and a pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// serveTLS serves e's gateway with TLS (and the plain-HTTP redirect) on a
// loopback port and returns its address and a client that trusts it.
func serveTLS(t *testing.T, e *testEnv) (addr string, client *http.Client) {
	t.Helper()
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := ListenTLS(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	srv := &http.Server{Handler: RedirectHTTP(e.g), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(tl)
	t.Cleanup(func() { srv.Close() })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return ln.Addr().String(), &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// TestTLSFrontDoor: one port speaks https, redirects plain http to it,
// and the session cookie is __Host- and Secure; websockets need an https
// Origin.
func TestTLSFrontDoor(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Secure = true })
	addr, client := serveTLS(t, e)

	t.Run("plain http is redirected", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, "http://"+addr+"/notebooks/a%20b.ipynb?x=1", strings.NewReader("x"))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := "https://" + addr + "/notebooks/a%20b.ipynb?x=1"
			if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
				t.Errorf("%s over http: %s Location %q, want 307 to %s", method, resp.Status, resp.Header.Get("Location"), want)
			}
			if resp.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS sent: it would cover every port of the host")
			}
		}
		if n := e.up.requests.Load(); n != 0 {
			t.Errorf("Jupyter received %d requests over plain http", n)
		}
	})

	t.Run("bad Host over plain http", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("status %s Location %q, want 400 without a redirect", resp.Status, resp.Header.Get("Location"))
		}
	})

	t.Run("a silent connection does not block others", func(t *testing.T) {
		idle, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		resp, err := client.Get("https://" + addr + "/spinbook/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("login page over https: %s", resp.Status)
		}
	})

	var cookie *http.Cookie
	t.Run("login over https", func(t *testing.T) {
		form := "password=" + strings.ReplaceAll(testPassword, " ", "+") + "&next=%2F"
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/spinbook/login", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://"+addr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
			t.Fatalf("login: %s, Set-Cookie %q", resp.Status, resp.Header["Set-Cookie"])
		}
		cookie = resp.Cookies()[0]
		if cookie.Name != "__Host-spinbook-alice" || !cookie.Secure || !cookie.HttpOnly || cookie.Path != "/" || cookie.Domain != "" {
			t.Errorf("cookie %+v, want __Host-spinbook-alice, Secure, HttpOnly, Path=/, no Domain", cookie)
		}
	})
	if cookie == nil {
		t.FailNow()
	}

	t.Run("websocket", func(t *testing.T) {
		header := func(origin string) http.Header {
			return http.Header{"Origin": {origin}, "Cookie": {cookie.Name + "=" + cookie.Value}}
		}
		c, _, err := websocket.Dial(t.Context(), "wss://"+addr+"/api/kernels/k/channels", &websocket.DialOptions{
			HTTPClient: client, HTTPHeader: header("https://" + addr),
		})
		if err != nil {
			t.Fatalf("wss with the https Origin: %v", err)
		}
		c.Close(websocket.StatusNormalClosure, "")
		_, resp, err := websocket.Dial(t.Context(), "wss://"+addr+"/api/kernels/k/channels", &websocket.DialOptions{
			HTTPClient: client, HTTPHeader: header("http://" + addr),
		})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("wss with an http Origin: %v, want 403", err)
		}
		if got := e.up.lastRequest(t).Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto %q, want https", got)
		}
	})
}

func TestListenTLSClose(t *testing.T) {
	cert, _ := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := ListenTLS(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	done := make(chan error, 1)
	go func() {
		_, err := tl.Accept()
		done <- err
	}()
	tl.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Accept after Close: no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the port still accepts connections after Close")
	}
}
