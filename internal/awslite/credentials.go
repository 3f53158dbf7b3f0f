package awslite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// ErrNoCredentials: neither the environment nor a container credentials
// endpoint gives keys.
var ErrNoCredentials = errors.New("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where the ECS task-role endpoint is (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)")

// ecsHost is where AWS_CONTAINER_CREDENTIALS_RELATIVE_URI points.
const ecsHost = "http://169.254.170.2"

// A Provider hands out credentials, refreshing them before they expire.
// Safe for concurrent use.
type Provider struct {
	// Getenv reads the environment; nil for os.Getenv.
	Getenv func(string) string
	// Client fetches from the container endpoint; nil for a client with a
	// 10-second timeout.
	Client *http.Client
	// Now is the clock; nil for time.Now.
	Now func() time.Time

	mu     sync.Mutex
	cached Credentials
}

// Static returns a Provider that always gives c.
func Static(c Credentials) *Provider {
	return &Provider{cached: c, Getenv: func(string) string { return "" }}
}

// Retrieve returns credentials: the cached ones while they have more than
// five minutes to live, else from the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else from the container
// endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, or
// AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN
// or _TOKEN_FILE), the ECS task role. Errors never hold a key.
func (p *Provider) Retrieve(ctx context.Context) (Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.cached.AccessKeyID != "" && (p.cached.Expires.IsZero() || p.cached.Expires.Sub(now) > 5*time.Minute) {
		return p.cached, nil
	}
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if id, key := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" && key != "" {
		p.cached = Credentials{AccessKeyID: id, SecretAccessKey: key, SessionToken: getenv("AWS_SESSION_TOKEN")}
		return p.cached, nil
	}
	var endpoint string
	switch rel, full := getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"); {
	case rel != "":
		endpoint = ecsHost + rel
	case full != "":
		endpoint = full
	default:
		return Credentials{}, ErrNoCredentials
	}
	auth := getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
	if f := getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return Credentials{}, fmt.Errorf("container credentials: read the authorization token: %w", err)
		}
		auth = strings.TrimSpace(string(b))
	}
	c, err := p.fetch(ctx, endpoint, auth)
	if err != nil {
		return Credentials{}, err
	}
	p.cached = c
	return c, nil
}

func (p *Provider) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// fetch asks the container credentials endpoint.
func (p *Provider) fetch(ctx context.Context, endpoint, auth string) (Credentials, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return Credentials{}, fmt.Errorf("container credentials: the endpoint is not an http(s) URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return Credentials{}, fmt.Errorf("container credentials: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Credentials{}, fmt.Errorf("container credentials from %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Credentials{}, fmt.Errorf("container credentials from %s: %w", u.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Credentials{}, fmt.Errorf("container credentials from %s: HTTP %d", u.Host, resp.StatusCode)
	}
	var out struct {
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string
		Token           string
		Expiration      time.Time
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return Credentials{}, fmt.Errorf("container credentials from %s: the answer is not the expected JSON", u.Host)
	}
	if out.AccessKeyID == "" || out.SecretAccessKey == "" {
		return Credentials{}, fmt.Errorf("container credentials from %s: the answer holds no keys", u.Host)
	}
	return Credentials{AccessKeyID: out.AccessKeyID, SecretAccessKey: out.SecretAccessKey, SessionToken: out.Token, Expires: out.Expiration}, nil
}
