package oidctest

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// Login signs account in at the provider the way a person would in a
// browser, without one: it opens authURL (an authorization request a
// relying party built, with state, nonce and a PKCE challenge), fills in
// the provider's login form and follows the provider's redirects until one
// leaves the provider. It returns that redirect (the client's redirect URI
// with code and state, or with error) without fetching it, so the caller
// can deliver it with its own cookies. A wrong password is ErrRejected.
func (p *Provider) Login(ctx context.Context, authURL, account, password string) (*url.URL, error) {
	issuer, err := url.Parse(p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidctest login: issuer: %w", err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("oidctest login: %w", err)
	}
	hc := &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != issuer.Host || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, fmt.Errorf("oidctest login: %w", err)
	}
	page, resp, err := fetch(hc, req)
	if err != nil {
		return nil, err
	}
	if out := leaving(resp, issuer); out != nil {
		return out, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oidctest login: the authorization request answered %s: %s", resp.Status, snippet(page))
	}
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("oidctest login: no login form on %s: %s", resp.Request.URL, snippet(page))
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return nil, fmt.Errorf("oidctest login: form action: %w", err)
	}

	form := url.Values{"login": {account}, "password": {password}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("oidctest login: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	page, resp, err = fetch(hc, req)
	if err != nil {
		return nil, err
	}
	if out := leaving(resp, issuer); out != nil {
		return out, nil
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, ErrRejected
	}
	return nil, fmt.Errorf("oidctest login: signing in answered %s: %s", resp.Status, snippet(page))
}

func fetch(hc *http.Client, req *http.Request) (string, *http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("oidctest login: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, fmt.Errorf("oidctest login: read %s: %w", req.URL, err)
	}
	return string(body), resp, nil
}

// leaving returns the redirect out of the provider that resp is, or nil.
func leaving(resp *http.Response, issuer *url.URL) *url.URL {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil
	}
	loc, err := resp.Location()
	if err != nil || loc.Host == issuer.Host {
		return nil
	}
	return loc
}

func snippet(s string) string {
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.TrimSpace(s)
}
