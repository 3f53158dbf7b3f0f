package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/agent/imdstest"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/gitwork/gittest"
	"github.com/spinbook/spinbook/internal/models"
	"github.com/spinbook/spinbook/internal/secret"
)

// TestIMDSTokenExpiry: the client sends IMDSv2 session tokens (the mock
// refuses a request without one), and when the service refuses a token
// that ran out before the client thought (its clock stands still here),
// it takes a new one and reads on.
func TestIMDSTokenExpiry(t *testing.T) {
	base := imdstest.Start(t, "spot") // a notice from the start
	resp, err := http.Get(base + spotInterruptionPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without a token: %s, want 401 (the mock must play IMDSv2 only)", resp.Status)
	}

	c := newIMDSClient(base, time.Second)
	frozen := time.Now()
	c.now = func() time.Time { return frozen }
	body, found, err := c.get(t.Context(), spotInterruptionPath)
	if err != nil || !found || !strings.Contains(string(body), `"action"`) {
		t.Fatalf("get = %q, %v, %v; want the notice", body, found, err)
	}
	first := c.token

	// Wait until the service has let the first token run out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+spotInterruptionPath, nil)
		req.Header.Set(imdsTokenHeader, first)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token of 1s still works after 10s (%s)", resp.Status)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	body, found, err = c.get(t.Context(), spotInterruptionPath)
	if err != nil || !found || !strings.Contains(string(body), `"action"`) {
		t.Fatalf("get after the token ran out = %q, %v, %v; want the notice read with a new token", body, found, err)
	}
	if c.token == first || c.token == "" {
		t.Errorf("the client kept the token the service refused")
	}
}

// TestIMDSNothingIsNotFound: with no notice and no recommendation yet the
// spot paths answer 404, which is "nothing", not an error.
func TestIMDSNothingIsNotFound(t *testing.T) {
	base := imdstest.Start(t, "spot", "--mock-delay-sec", "3600", "--rebalance-delay-sec", "3600")
	n, rebalance, err := pollSpot(t.Context(), newIMDSClient(base, 0))
	if err != nil || n != nil || !rebalance.IsZero() {
		t.Errorf("pollSpot = %v, %v, %v; want nothing", n, rebalance, err)
	}
}

// spotRemote is a real git remote behind a proxy that can hold pushes,
// as a slow or hanging remote does.
type spotRemote struct {
	git     *gittest.Server
	url     string
	hold    chan struct{} // closed: pushes go through
	pushing chan struct{} // gets a value when a push arrives
	mu      sync.Mutex
	held    bool
}

func newSpotRemote(t *testing.T) *spotRemote {
	r := &spotRemote{git: gittest.New(t, "token-not-sent-by-the-agent", "main", map[string]string{"a.txt": "a\n"}),
		hold: make(chan struct{}), pushing: make(chan struct{}, 8)}
	close(r.hold)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/git-receive-pack") {
			r.mu.Lock()
			hold := r.hold
			r.mu.Unlock()
			select {
			case r.pushing <- struct{}{}:
			default:
			}
			select {
			case <-hold:
			case <-req.Context().Done():
				return
			}
		}
		req.SetBasicAuth("agent", "token-not-sent-by-the-agent")
		r.git.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(r.release) // first: a held handler never sees its client go
	r.url = srv.URL + "/team.git"
	return r
}

// release lets pushes through again.
func (r *spotRemote) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.hold:
	default:
		close(r.hold)
	}
}

// hang makes pushes hang until the request ends.
func (r *spotRemote) hang() {
	r.mu.Lock()
	r.hold = make(chan struct{})
	r.mu.Unlock()
}

// newSpotAgent is an agent with a checkout of remote, a file model store
// and a spot watch on the metadata service at imds.
func newSpotAgent(t *testing.T, remote *spotRemote, imds string) (*Agent, string) {
	t.Helper()
	store := t.TempDir()
	spec := backend.AgentSpec{User: "alice", Workspace: t.TempDir(), BundleDir: filepath.Join(t.TempDir(), "bundles"),
		Repo:   &backend.Repo{URL: remote.url, Branch: "main"},
		Models: &backend.Models{URL: "file://" + store},
		Spot:   &backend.SpotWatch{Endpoint: imds, Interval: 100 * time.Millisecond}}
	a := New(spec, slog.New(slog.DiscardHandler), io.Discard)
	if _, err := a.prepareRepo(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closeRepo)
	return a, store
}

// stopRecords reads user's stop records from the file model store at dir.
func stopRecords(t *testing.T, dir, user string) []backend.StopRecord {
	t.Helper()
	store, err := models.Open(t.Context(), models.Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(t.Context(), models.StopRecordsPrefix(user))
	if err != nil {
		t.Fatal(err)
	}
	var out []backend.StopRecord
	for _, o := range objs {
		rc, _, err := store.Get(t.Context(), o.Name)
		if err != nil {
			t.Fatal(err)
		}
		var r backend.StopRecord
		err = json.NewDecoder(rc).Decode(&r)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", o.Name, err)
		}
		out = append(out, r)
	}
	return out
}

func waitNotice(t *testing.T, ch <-chan spotNotice, within time.Duration) spotNotice {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(within):
		t.Fatalf("no interruption notice within %v", within)
	}
	return spotNotice{}
}

// TestSpotRebalanceThenNotice: against ec2-metadata-mock, a rebalance
// recommendation saves at once and shows in the banner and status, the
// server running on; the interruption notice that follows stops the
// watch with AWS's action and time, saves, and leaves a record that says
// where the work went.
func TestSpotRebalanceThenNotice(t *testing.T) {
	remote := newSpotRemote(t)
	imds := imdstest.Start(t, "spot", "--rebalance-delay-sec", "1", "--mock-delay-sec", "4")
	a, store := newSpotAgent(t, remote, imds)
	a.startIdle()
	gittest.WriteFiles(t, a.spec.Workspace, map[string]string{"before.txt": "work before the recommendation\n"})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	ch := a.watchSpot(ctx, &wg)

	// The recommendation: a save, and a note.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(a.spot.Note(), "Your work was saved") {
		if time.Now().After(deadline) {
			t.Fatalf("no saved rebalance note within 15s; note %q", a.spot.Note())
		}
		select {
		case n := <-ch:
			t.Fatalf("the notice (%+v) came before the recommendation's save", n)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := remote.git.Tree(t, "main")["before.txt"]; got != "work before the recommendation\n" {
		t.Errorf("the remote holds before.txt = %q after the recommendation, want the work", got)
	}
	if b := a.banner(); !strings.Contains(b, "rebalance recommendation") {
		t.Errorf("banner = %q, want the recommendation", b)
	}
	if s := a.idleStatus(); s == nil || !strings.Contains(s.Spot, "rebalance recommendation") {
		t.Errorf("status = %+v, want the recommendation", s)
	}

	// The notice.
	gittest.WriteFiles(t, a.spec.Workspace, map[string]string{"after.txt": "work after it\n"})
	n := waitNotice(t, ch, 20*time.Second)
	cancel()
	wg.Wait()
	if n.Action != "terminate" || n.At.Before(n.Seen) || n.At.After(n.Seen.Add(3*time.Minute)) {
		t.Errorf("notice %+v, want terminate about two minutes after it was seen", n)
	}
	if !strings.Contains(a.banner(), "takes this spot server back at") {
		t.Errorf("banner after the notice = %q", a.banner())
	}
	a.stopForSpot(n, nil)
	if got := remote.git.Tree(t, "main")["after.txt"]; got != "work after it\n" {
		t.Errorf("the remote holds after.txt = %q after the notice, want the work", got)
	}
	recs := stopRecords(t, store, "alice")
	if len(recs) != 1 {
		t.Fatalf("stop records %+v, want one", recs)
	}
	r := recs[0]
	if r.Reason != backend.StopSpotReclaimed || !r.Saved || r.Branch != "main" || !r.TakenAt.Equal(n.At.UTC().Truncate(time.Second)) && !r.TakenAt.Equal(n.At.UTC()) {
		t.Errorf("record %+v, want spot-reclaimed, saved to main, taken at %v", r, n.At)
	}
	if want := "stopped: spot capacity reclaimed at " + n.At.UTC().Format("2006-01-02 15:04:05 UTC") + "; work saved (branch main)"; r.Summary() != want {
		t.Errorf("summary %q, want %q", r.Summary(), want)
	}

	// A second stop for the same notice (the task restarted) is no error
	// and no second record.
	a.stopForSpot(n, nil)
	if recs := stopRecords(t, store, "alice"); len(recs) != 1 {
		t.Errorf("%d records after the same stop twice, want 1", len(recs))
	}
}

// TestSpotNoticeMidSave: the notice arrives while a save pushes to a
// remote that hangs. The save under way gives up its push and bundles; the
// save on the notice commits what came since and, the remote still
// hanging, bundles within its budget into the model store; the record
// says the work is saved, and the bundles hold every change.
func TestSpotNoticeMidSave(t *testing.T) {
	remote := newSpotRemote(t)
	a, store := newSpotAgent(t, remote, "")
	gittest.WriteFiles(t, a.spec.Workspace, map[string]string{"first.txt": "saved while the remote hangs\n"})
	remote.hang()

	type saved struct {
		bundle string
		err    error
	}
	userSave := make(chan saved, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
		defer cancel()
		res, err := a.saveRepo(ctx, "") // `spinbook save`, say
		userSave <- saved{res.StoredBundle, err}
	}()
	select {
	case <-remote.pushing:
	case <-time.After(30 * time.Second):
		t.Fatal("the save never reached the remote")
	}
	gittest.WriteFiles(t, a.spec.Workspace, map[string]string{"second.txt": "written during the save\n"})

	// The notice comes now, with AWS taking the instance in 20s.
	takenAt := time.Now().Add(20 * time.Second).UTC().Truncate(time.Second)
	a.spec.Spot = &backend.SpotWatch{Endpoint: imdstest.Start(t, "spot", "--time", takenAt.Format(time.RFC3339)),
		Interval: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	n := waitNotice(t, a.watchSpot(ctx, &wg), 20*time.Second)
	wg.Wait()
	if !n.At.Equal(takenAt) {
		t.Errorf("notice at %v, want %v", n.At, takenAt)
	}

	var first saved
	select {
	case first = <-userSave:
	case <-time.After(20 * time.Second):
		t.Fatal("the save under way did not give way to a bundle on the notice")
	}
	if first.err != nil || first.bundle == "" {
		t.Errorf("the save under way: bundle %q, err %v; want a stored bundle", first.bundle, first.err)
	}
	a.stopForSpot(n, nil)
	if now := time.Now(); now.After(takenAt) {
		t.Errorf("the stop ended at %v, after AWS takes the instance (%v)", now, takenAt)
	}
	recs := stopRecords(t, store, "alice")
	if len(recs) != 1 || !recs[0].Saved || recs[0].Bundle == "" || !strings.Contains(recs[0].Summary(), "work saved (git bundle ") {
		t.Fatalf("records %+v, want one saying the work is in a stored bundle", recs)
	}

	// Nothing lost: the newest bundle, on top of the remote, holds both files.
	storeObjs, err := os.ReadDir(filepath.Join(store, "spinbook", "bundles", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	var bundles []string
	for _, e := range storeObjs {
		if strings.HasSuffix(e.Name(), ".bundle") {
			bundles = append(bundles, filepath.Join(store, "spinbook", "bundles", "alice", e.Name()))
		}
	}
	slices.Sort(bundles)
	if len(bundles) == 0 {
		t.Fatal("no bundle in the model store")
	}
	restore := t.TempDir()
	gittest.Git(t, restore, "clone", "-q", remote.git.Bare, ".")
	gittest.Git(t, restore, "fetch", "-q", bundles[len(bundles)-1], "HEAD:refs/heads/restored")
	tree := gittest.TreeOf(t, restore, "restored")
	if tree["first.txt"] != "saved while the remote hangs\n" || tree["second.txt"] != "written during the save\n" {
		t.Errorf("the last bundle holds %v, want first.txt and second.txt", tree)
	}
	if recs[0].Head != strings.TrimSpace(gittest.Git(t, restore, "rev-parse", "restored")) {
		t.Errorf("record head %s is not the bundle's", recs[0].Head)
	}
}

// TestSpotSaveBudget: the save on a notice ends in time for Jupyter's
// stop and the record, within the backend's grace, and never gets less
// than spotSaveMin.
func TestSpotSaveBudget(t *testing.T) {
	for _, tt := range []struct {
		name        string
		left, grace time.Duration
		want        time.Duration
	}{
		{"a fresh notice on aws", 2 * time.Minute, 120 * time.Second, 100 * time.Second},
		{"a notice seen late", 40 * time.Second, 120 * time.Second, 20 * time.Second},
		{"a notice seen too late", 10 * time.Second, 120 * time.Second, spotSaveMin},
		{"a grace shorter than the notice", 2 * time.Minute, 30 * time.Second, 20 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := spotSaveBudget(tt.left, tt.grace); got != tt.want {
				t.Errorf("spotSaveBudget(%v, %v) = %v, want %v", tt.left, tt.grace, got, tt.want)
			}
		})
	}
}

// TestRunStopsOnSpotNotice runs the whole agent, with real Jupyter, on a
// spot instance ec2-metadata-mock plays: the notice ends Run by itself
// (no SIGTERM) once Jupyter runs, with the work pushed, the stop recorded and Jupyter gone.
func TestRunStopsOnSpotNotice(t *testing.T) {
	venv := testVenv(t)
	remote := newSpotRemote(t)
	hash, err := secret.HashPassword("spot-test-password")
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	spec := backend.AgentSpec{User: "alice", Workspace: t.TempDir(), StateDir: t.TempDir(), CredentialsDir: t.TempDir(),
		BundleDir: filepath.Join(t.TempDir(), "bundles"), Listen: "127.0.0.1", PasswordHash: hash, JupyterVenv: venv,
		Repo:   &backend.Repo{URL: remote.url, Branch: "main"},
		Models: &backend.Models{URL: "file://" + store},
		// The notice is there from the start: the agent reads it once
		// Jupyter runs.
		Spot: &backend.SpotWatch{Endpoint: imdstest.Start(t, "spot"), Interval: 200 * time.Millisecond}}
	// Work the clone keeps (a workspace need not be empty), for the
	// save on the notice to push.
	gittest.WriteFiles(t, spec.Workspace, map[string]string{"analysis.py": "print('spot')\n"})
	a := New(spec, slog.New(slog.DiscardHandler), io.Discard)
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }()
	var err2 error
	select {
	case err2 = <-done:
	case <-time.After(150 * time.Second):
		t.Fatal("Run did not end on the spot notice within 150s")
	}
	if err2 != nil {
		t.Fatalf("Run = %v, want a clean stop", err2)
	}
	var pid int
	if data, err := os.ReadFile(filepath.Join(spec.StateDir, "jupyter.json")); err == nil {
		var p backend.ProcessRecord
		json.Unmarshal(data, &p)
		pid = p.PID
	}
	if got := remote.git.Tree(t, "main")["analysis.py"]; got != "print('spot')\n" {
		t.Errorf("the remote holds analysis.py = %q, want the work", got)
	}
	recs := stopRecords(t, store, "alice")
	if len(recs) != 1 || !strings.HasPrefix(recs[0].Summary(), "stopped: spot capacity reclaimed at ") || !strings.HasSuffix(recs[0].Summary(), "work saved (branch main)") {
		t.Errorf("records %+v, want one saying the work is on main", recs)
	}
	if pid == 0 {
		t.Fatal("no jupyter.json: which Jupyter ran is unknown")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("Jupyter (pid %d) still runs after the stop", pid)
	}
}

// TestIMDSRelay: through the relay the agent reads the spot notice (and
// its token works only with the relay); every other path of the metadata
// service — the instance role's credentials above all — is not found,
// though the metadata service itself serves them.
func TestIMDSRelay(t *testing.T) {
	upstream := imdstest.Start(t) // every path, a spot notice included
	relay := httptest.NewServer(NewIMDSRelay(upstream))
	t.Cleanup(relay.Close)

	c := newIMDSClient(relay.URL, 0)
	if _, found, err := c.get(t.Context(), spotInterruptionPath); err != nil || !found {
		t.Fatalf("the notice through the relay: found %v, err %v", found, err)
	}
	direct := newIMDSClient(upstream, 0)
	for _, path := range []string{"/latest/meta-data/iam/security-credentials/", "/latest/meta-data/instance-id",
		"/latest/user-data", "/latest/meta-data/spot/instance-action/../../iam/info"} {
		if _, found, err := direct.get(t.Context(), path); err != nil || !found {
			t.Fatalf("the mock does not serve %s (found %v, %v): the check below proves nothing", path, found, err)
		}
		if _, found, err := c.get(t.Context(), path); err != nil || found {
			t.Errorf("%s through the relay: found %v, err %v; want 404", path, found, err)
		}
	}
	// The relay's token is not the metadata service's.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, upstream+spotInterruptionPath, nil)
	req.Header.Set(imdsTokenHeader, c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the relay's token at the metadata service: %s, want 401", resp.Status)
	}
	for _, tt := range []struct {
		name, method, token string
		want                int
	}{
		{"no token", http.MethodGet, "", http.StatusUnauthorized},
		{"a wrong token", http.MethodGet, "not-the-token", http.StatusUnauthorized},
		{"not a GET", http.MethodPost, c.token, http.StatusMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, relay.URL+spotInterruptionPath, nil)
			if tt.token != "" {
				req.Header.Set(imdsTokenHeader, tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s: %s, want %d", tt.name, resp.Status, tt.want)
			}
		})
	}
}

// TestSpotRecordHoldsNoSecret: the stop record and the agent's log of a
// spot stop whose save fails hold no secret of the spec, though git's
// error quotes one (here a secret in the remote's path, which git prints
// in full): the record travels to the model store, where status reads
// it. (gitwork redacts git's errors with the agent's redactor, and
// stopForSpot redacts the reason again; the test fails if both stop.)
func TestSpotRecordHoldsNoSecret(t *testing.T) {
	const canary = "CANARY-spot-secret-4b1d"
	g := gittest.New(t, "token-not-sent-by-the-agent", "main", map[string]string{"a.txt": "a\n"})
	var down atomic.Bool
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/"+canary)
		r.SetBasicAuth("agent", "token-not-sent-by-the-agent")
		g.ServeHTTP(w, r)
	}))
	t.Cleanup(remote.Close)
	var log strings.Builder
	var mu sync.Mutex
	spec := backend.AgentSpec{User: "alice", Workspace: t.TempDir(), BundleDir: filepath.Join(t.TempDir(), "bundles"),
		Repo:    &backend.Repo{URL: remote.URL + "/" + canary + "/team.git", Branch: "main"},
		Secrets: []string{canary}}
	a := New(spec, slog.New(slog.NewTextHandler(&lockedWriter{w: &log, mu: &mu}, nil)), io.Discard)
	if _, err := a.prepareRepo(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closeRepo)
	rec := &recordingStops{}
	a.stops = rec
	down.Store(true)
	gittest.WriteFiles(t, spec.Workspace, map[string]string{"work.txt": "work\n"})
	a.stopForSpot(spotNotice{Action: "terminate", At: time.Now().Add(time.Minute), Seen: time.Now()}, nil)

	if len(rec.got) != 1 {
		t.Fatalf("records %+v, want one", rec.got)
	}
	r := rec.got[0]
	if r.Saved || !strings.Contains(r.Detail, "push failed") || !strings.Contains(r.Summary(), "work NOT saved off the server: push failed") {
		t.Errorf("record %+v, want the work not saved off the server, saying why", r)
	}
	data, _ := json.Marshal(r)
	mu.Lock()
	logged := log.String()
	mu.Unlock()
	if !strings.Contains(logged, "[redacted]") && !strings.Contains(string(data), "[redacted]") {
		t.Errorf("nothing was redacted: git's error did not quote the secret, so this test proves nothing\nrecord: %s\nlog: %s", data, logged)
	}
	for what, text := range map[string]string{"the record": string(data), "the log": logged} {
		if strings.Contains(text, canary) {
			t.Errorf("%s holds the secret: %s", what, text)
		}
	}
}

// recordingStops is a stopRecorder that keeps what it is given.
type recordingStops struct{ got []backend.StopRecord }

func (r *recordingStops) RecordStop(_ context.Context, rec backend.StopRecord) error {
	r.got = append(r.got, rec)
	return nil
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
