package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// jupyterAPI is one way to reach a Jupyter server: the base URL of its API
// and the headers that authenticate to it (a session cookie at the front
// door, a token directly or through the proxy).
type jupyterAPI struct {
	base   string // ends in "/", e.g. http://127.0.0.1:19300/user/bench/
	header http.Header
	origin string // Origin for websockets and POSTs ("" = none)
	client *http.Client
}

// newClient returns a client that does not follow redirects; keepAlive
// false opens a new connection per request, as a load balancer's health
// check does.
func newClient(keepAlive bool, timeout time.Duration) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 16}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends method path (relative to base) with the API's headers and
// returns the status and body.
func (j jupyterAPI) do(ctx context.Context, method, path, body string) (int, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, j.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range j.header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if j.origin != "" && method != http.MethodGet {
		req.Header.Set("Origin", j.origin)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// get fetches url (absolute) with header and reports whether it answered
// 200.
func get(ctx context.Context, client *http.Client, url string, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// pollOK polls url every interval until it answers 200 or timeout passes.
func pollOK(ctx context.Context, client *http.Client, url string, header http.Header, interval, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := get(ctx, client, url, header)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", url, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// headerLines turns h into wrk's -H arguments.
func headerLines(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}
