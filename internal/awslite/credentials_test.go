package awslite

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
)

// taskRoleStandIn is a stand-in for the ECS task-role credentials endpoint
// (169.254.170.2), which neither moto nor any other server here plays: it
// answers as the ECS agent documents, counting the requests, and requires
// auth as its Authorization header when auth is not "".
func taskRoleStandIn(t *testing.T, auth string, expires time.Time) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if auth != "" && r.Header.Get("Authorization") != auth {
			http.Error(w, `{"code":"AccessDenied"}`, http.StatusForbidden)
			return
		}
		if r.URL.Path != "/v2/credentials/task-role-1" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"RoleArn": "arn:aws:iam::123456789012:role/spinbook-alice", "AccessKeyId": "ASIATASKROLE",
			"SecretAccessKey": "CANARY-task-role-secret", "Token": "task-role-token", "Expiration": expires.UTC().Format(time.RFC3339),
		})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestProvider(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("file-token\n"), 0o600)
	tests := []struct {
		name    string
		env     map[string]string
		auth    string
		want    string // access key id; "" wants an error
		wantErr string
	}{
		{"environment", map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "URL"}, "", "AKIDENV", ""},
		{"task role", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "URL/v2/credentials/task-role-1"}, "", "ASIATASKROLE", ""},
		{"task role with a token", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "URL/v2/credentials/task-role-1", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok"}, "tok", "ASIATASKROLE", ""},
		{"task role with a token file", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "URL/v2/credentials/task-role-1", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile}, "file-token", "ASIATASKROLE", ""},
		{"wrong token", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "URL/v2/credentials/task-role-1", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "bad"}, "tok", "", "HTTP 403"},
		{"unknown role path", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "URL/v2/credentials/other"}, "", "", "HTTP 404"},
		{"nothing", map[string]string{}, "", "", "no AWS credentials"},
		{"not a URL", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "file:///etc/passwd"}, "", "", "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := taskRoleStandIn(t, tt.auth, now.Add(time.Hour))
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = strings.Replace(v, "URL", srv.URL, 1)
			}
			p := &Provider{Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return now }}
			c, err := p.Retrieve(t.Context())
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Retrieve = %v, want an error saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "CANARY") || strings.Contains(err.Error(), "tok") {
					t.Errorf("the error %q carries a secret", err)
				}
				return
			}
			if err != nil || c.AccessKeyID != tt.want {
				t.Fatalf("Retrieve = %+v, %v; want keys %s", c, err, tt.want)
			}
		})
	}
}

// TestProviderRefreshes: task-role keys are cached until five minutes
// before they expire, then fetched anew.
func TestProviderRefreshes(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	srv, calls := taskRoleStandIn(t, "", now.Add(time.Hour))
	env := map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL + "/v2/credentials/task-role-1"}
	clock := now
	p := &Provider{Getenv: func(k string) string { return env[k] }, Now: func() time.Time { return clock }}
	for _, step := range []struct {
		at    time.Duration
		calls int32
	}{{0, 1}, {30 * time.Minute, 1}, {56 * time.Minute, 2}} {
		clock = now.Add(step.at)
		if _, err := p.Retrieve(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load(); got != step.calls {
			t.Errorf("after %s: %d fetches, want %d", step.at, got, step.calls)
		}
	}
}

// TestProviderAgreesWithSDK: the SDK's endpoint provider (the oracle)
// reads the same keys from the same endpoint.
func TestProviderAgreesWithSDK(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	srv, _ := taskRoleStandIn(t, "tok", exp)
	url := srv.URL + "/v2/credentials/task-role-1"
	env := map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok"}
	mine, err := (&Provider{Getenv: func(k string) string { return env[k] }}).Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := endpointcreds.New(url, func(o *endpointcreds.Options) { o.AuthorizationToken = "tok" }).Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if mine.AccessKeyID != theirs.AccessKeyID || mine.SecretAccessKey != theirs.SecretAccessKey || mine.SessionToken != theirs.SessionToken || !mine.Expires.Equal(theirs.Expires) {
		t.Errorf("mine %+v, the SDK's %+v", mine, theirs)
	}
}
