package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape GETs the health port's /metrics and returns the exposition.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s = %s %s:\n%s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return string(body)
}

// sample is the value of series (name and labels exactly as the text
// format writes them, labels in name order) in exposition; -1 when absent.
func sample(exposition, series string) float64 {
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestMetrics: the agent's health port serves Prometheus /metrics without
// a login; after real traffic through the front door — a wrong password,
// a login, a proxied API call — and a save, the counters moved by exactly
// that, and nothing in the exposition is a path, a password or a token.
func TestMetrics(t *testing.T) {
	g := newGitWorld(t, "main", "")
	s := g.up("mia")
	url := strings.TrimSuffix(s.HealthURL, "/healthz") + "/metrics"
	before := scrape(t, url)
	for _, series := range []string{
		`spinbook_login_failures_total`, `spinbook_login_throttled_total`, `spinbook_jupyter_restarts_total`,
		`spinbook_saves_total{result="up_to_date"}`, `spinbook_saves_total{result="failed"}`,
		`spinbook_proxied_bytes_total{direction="to_client"}`, `spinbook_kernels{state="busy"}`,
	} {
		if v := sample(before, series); v != 0 {
			t.Errorf("before any traffic %s = %v, want a series at 0", series, v)
		}
	}
	if v := sample(before, "spinbook_idle_stop_deadline_timestamp_seconds"); v != 0 && v < float64(time.Now().Unix()) {
		t.Errorf("spinbook_idle_stop_deadline_timestamp_seconds = %v, want 0 (no stop) or a time to come", v)
	}
	if v := sample(before, "process_resident_memory_bytes"); v <= 0 {
		t.Errorf("process_resident_memory_bytes = %v, want the agent's RSS", v)
	}

	b := newBrowser(t, s.URL, "")
	if resp := b.login(t, "wrong-"+s.Password); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password = %s", resp.Status)
	}
	if resp := b.login(t, s.Password); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %s", resp.Status)
	}
	resp := b.do(t, http.MethodGet, "/api/status?secret-query=1", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/status through the front door = %s", resp.Status)
	}
	io.Copy(io.Discard, resp.Body)
	if res, r := g.save(t, "mia"); r.code != 0 || !res.Saved {
		t.Fatalf("save: %s", r)
	}

	after := scrape(t, url)
	moved := []struct {
		series string
		by     float64 // exact; 0 = "more than before"
	}{
		{`spinbook_login_failures_total`, 1},
		{`spinbook_http_requests_total{code="401",route="login"}`, 1},
		{`spinbook_http_requests_total{code="303",route="login"}`, 1},
		{`spinbook_http_requests_total{code="200",route="api"}`, 0},
		{`spinbook_http_request_duration_seconds_count{route="api"}`, 0},
		{`spinbook_proxied_bytes_total{direction="to_client"}`, 0},
		{`spinbook_login_throttled_total`, -1}, // did not move
		{`spinbook_saves_total{result="failed"}`, -1},
	}
	for _, m := range moved {
		was, now := max(sample(before, m.series), 0), sample(after, m.series)
		switch {
		case now < 0:
			t.Errorf("%s is missing after the traffic", m.series)
		case m.by > 0 && now-was != m.by:
			t.Errorf("%s went %v -> %v, want +%v", m.series, was, now, m.by)
		case m.by == 0 && now <= was:
			t.Errorf("%s went %v -> %v, want it to grow", m.series, was, now)
		case m.by < 0 && now != was:
			t.Errorf("%s went %v -> %v, want it unchanged", m.series, was, now)
		}
	}
	saves := func(exposition string) (n float64) {
		for _, r := range []string{"pushed", "new_branch", "up_to_date", "bundle_stored", "bundle_on_server", "failed", "not_saved"} {
			n += max(sample(exposition, `spinbook_saves_total{result="`+r+`"}`), 0)
		}
		return n
	}
	if got := saves(after) - saves(before); got != 1 {
		t.Errorf("spinbook_saves_total grew by %v over its results, want 1 (the save)", got)
	}
	if v := sample(after, "spinbook_last_activity_timestamp_seconds"); v <= 0 {
		t.Errorf("spinbook_last_activity_timestamp_seconds = %v, want the time of the API call", v)
	}
	for _, secret := range []string{s.Password, g.token, "/api/status", "secret-query", s.Workspace} {
		if strings.Contains(after, secret) {
			t.Errorf("the exposition holds %q", secret)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %v, %v; want 405", resp, err)
	} else {
		resp.Body.Close()
	}
}
