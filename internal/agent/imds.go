package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The instance metadata service, version 2, as the agent of a spot server
// uses it: a session token from PUT /latest/api/token, then GETs that
// carry it. Plain net/http: the agent has no AWS SDK in it.
const (
	imdsDefaultEndpoint = "http://169.254.169.254"
	imdsTokenPath       = "/latest/api/token"
	imdsTokenHeader     = "X-aws-ec2-metadata-token"
	imdsTTLHeader       = "X-aws-ec2-metadata-token-ttl-seconds"
	// imdsMaxTTL is the longest token life IMDSv2 grants.
	imdsMaxTTL = 6 * time.Hour
)

// imdsClient reads the metadata service with IMDSv2 session tokens,
// taking a new token before the old one runs out, and once more when the
// service refuses one (401: expired early, or the service restarted).
type imdsClient struct {
	base string
	ttl  time.Duration
	http *http.Client
	now  func() time.Time

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

func newIMDSClient(endpoint string, ttl time.Duration) *imdsClient {
	if endpoint == "" {
		endpoint = imdsDefaultEndpoint
	}
	if ttl <= 0 || ttl > imdsMaxTTL {
		ttl = imdsMaxTTL
	}
	return &imdsClient{
		base: strings.TrimSuffix(endpoint, "/"),
		ttl:  ttl.Truncate(time.Second),
		// The service answers at once, or not at all: off an instance,
		// or with the hop limit in the way.
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}},
		now:  time.Now,
	}
}

// get reads path: found is false for 404, which for the spot paths
// means "no notice".
func (c *imdsClient) get(ctx context.Context, path string) (body []byte, found bool, err error) {
	for try := 0; try < 2; try++ {
		token, err := c.session(ctx)
		if err != nil {
			return nil, false, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
		if err != nil {
			return nil, false, fmt.Errorf("instance metadata %s: %w", path, err)
		}
		req.Header.Set(imdsTokenHeader, token)
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, false, fmt.Errorf("instance metadata %s: %w", path, err)
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			c.forget(token) // and take a new one
			continue
		case resp.StatusCode == http.StatusNotFound:
			return nil, false, nil
		case resp.StatusCode != http.StatusOK:
			return nil, false, fmt.Errorf("instance metadata %s: %s", path, resp.Status)
		case err != nil:
			return nil, false, fmt.Errorf("instance metadata %s: %w", path, err)
		}
		return body, true, nil
	}
	return nil, false, fmt.Errorf("instance metadata %s: a new session token was refused too", path)
}

// session returns a token with life left, taking a new one when needed.
func (c *imdsClient) session(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.now().Before(c.renewAt) {
		return c.token, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+imdsTokenPath, nil)
	if err != nil {
		return "", fmt.Errorf("instance metadata token: %w", err)
	}
	req.Header.Set(imdsTTLHeader, strconv.Itoa(int(c.ttl/time.Second)))
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("instance metadata token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("instance metadata token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("instance metadata token: %s", resp.Status)
	}
	token := strings.TrimSpace(string(body))
	if token == "" {
		return "", errors.New("instance metadata token: the service answered with none")
	}
	// Renew a tenth of the life (at most a minute) before the end.
	c.token, c.renewAt = token, start.Add(c.ttl-min(c.ttl/10, time.Minute))
	return token, nil
}

// forget drops token, if it is still the one in use.
func (c *imdsClient) forget(token string) {
	c.mu.Lock()
	if c.token == token {
		c.token = ""
	}
	c.mu.Unlock()
}
