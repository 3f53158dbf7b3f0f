// Package client calls a spinbook portal's API (/api/v1) with a personal
// API token, for the command line after `spinbook login`. It knows the
// routes and the wire format (JSON bodies, SSE progress, JSON errors); the
// command line decodes results into its own output types, which the portal
// shares.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// tokenPattern is a personal API token: "sbp_" and 32 random bytes in
// unpadded base64url.
var tokenPattern = regexp.MustCompile(`^sbp_[A-Za-z0-9_-]{43}$`)

// CheckToken says whether token looks like a portal API token, without
// saying anything about the token in the error.
func CheckToken(token string) error {
	if !tokenPattern.MatchString(token) {
		return errors.New("that is not a portal API token (they look like sbp_ and 43 letters, digits, '-' or '_'): copy it again from the portal's Tokens page")
	}
	return nil
}

// CheckURL validates and normalises a portal's address: https, or http to
// this machine only (a token sent in clear elsewhere could be read on the
// way); no query or fragment; no trailing slash.
func CheckURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%q is not a portal URL: give its address as https://HOST[:PORT]", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: a portal URL has no user, query or fragment: give it as https://HOST[:PORT][/PATH]", raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return "", fmt.Errorf("%s: the token would travel unencrypted: use the portal's https:// address (plain http only to this machine)", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client calls one portal as one person.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for the portal at baseURL (as CheckURL returns it)
// with token; hc nil is a default client.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 0} // long starts stream; callers bound them with ctx
	}
	return &Client{base: baseURL, token: token, hc: hc}
}

// URL is the portal's address.
func (c *Client) URL() string { return c.base }

// Error is an answer from the portal other than success: its status and
// its message (what failed, why, what to do).
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the portal refused the token: %s; then run `spinbook login PORTAL_URL` again", msg)
	case http.StatusTooManyRequests:
		return fmt.Sprintf("the portal is rate-limiting you (%s): wait a minute and try again", msg)
	}
	return msg
}

// Me is who the token belongs to.
type Me struct {
	User  string `json:"user"`
	Admin bool   `json:"admin"`
}

// Me asks the portal whose token this is: the check `spinbook login` makes.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var me Me
	err := c.call(ctx, http.MethodGet, "me", nil, &me)
	if err == nil && me.User == "" {
		err = errors.New("the portal's /api/v1/me named no user: is this a spinbook portal?")
	}
	return me, err
}

// List decodes every server the token may see into out (a slice).
func (c *Client) List(ctx context.Context, out any) error {
	return c.call(ctx, http.MethodGet, "servers", nil, out)
}

// Status decodes user's server into out.
func (c *Client) Status(ctx context.Context, user string, out any) error {
	return c.call(ctx, http.MethodGet, "servers/"+url.PathEscape(user), nil, out)
}

// Start brings user's server up with size ("" the default), calling
// progress with each step the portal reports, and decodes the ready
// server into out.
func (c *Client) Start(ctx context.Context, user, size string, progress func(string), out any) error {
	return c.stream(ctx, "servers/"+url.PathEscape(user)+"/start", map[string]any{"size": size}, progress, out)
}

// Stop stops user's server (the portal saves its work first, as `down`
// does), calling progress with each step, and decodes the server after.
func (c *Client) Stop(ctx context.Context, user string, purge, force bool, progress func(string), out any) error {
	return c.stream(ctx, "servers/"+url.PathEscape(user)+"/stop", map[string]any{"purge": purge, "force": force}, progress, out)
}

// Save commits and pushes user's workspace; out gets what `save --json` prints.
func (c *Client) Save(ctx context.Context, user, message string, out any) error {
	return c.call(ctx, http.MethodPost, "servers/"+url.PathEscape(user)+"/save", map[string]any{"message": message}, out)
}

// Extend postpones user's idle stop by d; out gets what `extend --json` prints.
func (c *Client) Extend(ctx context.Context, user string, d time.Duration, out any) error {
	return c.call(ctx, http.MethodPost, "servers/"+url.PathEscape(user)+"/extend", map[string]any{"for": d.String()}, out)
}

// send makes one call and returns the answer when it is 200 OK; any other
// is the portal's error.
func (c *Client) send(ctx context.Context, method, path, accept string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/api/v1/"+path, r)
	if err != nil {
		return nil, fmt.Errorf("portal request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// do sends req; a transport failure names the portal, never the token.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("portal %s: %w", c.base, ctxErr)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		return nil, fmt.Errorf("cannot reach the portal at %s (%w): check the address and your network, or run `spinbook login URL` with the right one", c.base, err)
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, "application/json", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp.Body, out)
}

func decode(r io.Reader, out any) error {
	if err := json.NewDecoder(io.LimitReader(r, 8<<20)).Decode(out); err != nil {
		return fmt.Errorf("the portal's answer is not what spinbook expects (%w): is the URL a spinbook portal of this version?", err)
	}
	return nil
}

// readError turns a failed answer into an *Error, with the portal's
// message when it sent one.
func readError(resp *http.Response) error {
	var body struct {
		Error string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = fmt.Sprintf("the portal answered %s, not a spinbook API answer: is the URL a spinbook portal?", resp.Status)
	}
	return e
}

// stream POSTs body to path asking for SSE progress: "progress" events go
// to progress, and the one "done" is decoded into out, or the one "error"
// returned. A portal that answers with plain JSON is accepted too.
func (c *Client) stream(ctx context.Context, path string, body any, progress func(string), out any) error {
	resp, err := c.send(ctx, http.MethodPost, path, "text/event-stream", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return decode(resp.Body, out)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if done, err := c.event(event, data.String(), progress, out); done || err != nil {
				return err
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, ":"): // a comment, e.g. a keep-alive
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("portal %s: %w", c.base, ctx.Err())
		}
		return fmt.Errorf("the portal's progress stream broke off (%w): run `spinbook status` to see where the server is", err)
	}
	return errors.New("the portal's progress stream ended without a result: run `spinbook status` to see where the server is")
}

// event handles one SSE event; done says the stream's result has come.
func (c *Client) event(name, data string, progress func(string), out any) (done bool, err error) {
	switch name {
	case "progress":
		var p struct {
			Message string `json:"message"`
		}
		if json.Unmarshal([]byte(data), &p) == nil && p.Message != "" && progress != nil {
			progress(p.Message)
		}
		return false, nil
	case "done":
		return true, decode(strings.NewReader(data), out)
	case "error":
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(data), &e) != nil || e.Error == "" {
			e.Error = "the portal reported a failure without saying what"
		}
		return true, errors.New(e.Error)
	}
	return false, nil // unknown events are for newer clients
}
