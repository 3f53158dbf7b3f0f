package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// spinbook runs the built binary on the local backend in a state dir of
// its own, with a password set in the config (as a team would), so that
// `up` does not spend time generating one.
type spinbook struct {
	bin, dir, user string
	env            []string
	password       string
	poll           time.Duration
	timeout        time.Duration // of one command; 0: 2 minutes

	url, healthURL string // set by up
	cookie         string // session cookie "name=value", set by login
	agentPID       int
}

func newSpinbook(ctx context.Context, stack Stack, bin, dir string, ports string, poll time.Duration) (*spinbook, error) {
	s := &spinbook{bin: bin, dir: dir, user: "bench", password: randomHex(16), poll: poll}
	cmd := exec.CommandContext(ctx, bin, "password")
	cmd.Stdin = strings.NewReader(s.password + "\n")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("spinbook password: %w", err)
	}
	hash := strings.TrimSpace(string(out))
	command, _ := json.Marshal(stack.Jupyter) // a JSON list is a YAML flow sequence
	cfg := fmt.Sprintf("access:\n  password_hash: %q\njupyter:\n  command: %s\nlocal:\n  state_dir: %s\n  ports: %s\n",
		hash, command, filepath.Join(dir, "state"), ports)
	config := filepath.Join(dir, "spinbook.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s.env = append(os.Environ(), "SPINBOOK_CONFIG="+config, "SPINBOOK_USER=")
	return s, nil
}

func (s *spinbook) run(ctx context.Context, args ...string) ([]byte, error) {
	timeout := s.timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append(args, "--user", s.user)...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("spinbook %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// upTimes is how long one `spinbook up` took.
type upTimes struct {
	returned time.Duration // until `up` returned, the server ready
	login    time.Duration // the first login at the front door (an argon2id check)
	answered time.Duration // then until Jupyter answered /api/status through the front door
}

// spawn is the time until the server answered through the front door,
// without the login: a password check is the user's, not the server's.
func (u upTimes) spawn() time.Duration { return u.returned + u.answered }

// up runs `spinbook up`, logs in and waits until Jupyter answers through
// the front door.
func (s *spinbook) up(ctx context.Context) (upTimes, error) {
	var u upTimes
	t0 := time.Now()
	out, err := s.run(ctx, "up", "--json")
	if err != nil {
		return u, err
	}
	u.returned = time.Since(t0)
	if err := s.setURL(out); err != nil {
		return u, err
	}
	t1 := time.Now()
	if err := s.login(ctx); err != nil {
		return u, err
	}
	u.login = time.Since(t1)
	t2 := time.Now()
	if err := pollOK(ctx, newClient(true, 5*time.Second), s.url+"api/status", s.api().header, s.poll, time.Minute); err != nil {
		return u, err
	}
	u.answered = time.Since(t2)
	return u, nil
}

// setURL keeps the URLs `up --json` printed.
func (s *spinbook) setURL(upJSON []byte) error {
	var st struct {
		URL       string `json:"url"`
		HealthURL string `json:"health_url"`
	}
	if err := json.Unmarshal(upJSON, &st); err != nil || st.URL == "" {
		return fmt.Errorf("spinbook up --json printed %q: %v", upJSON, err)
	}
	s.url, s.healthURL = strings.TrimSuffix(st.URL, "/")+"/", st.HealthURL
	return nil
}

// login posts the password to the login form and keeps the session cookie.
func (s *spinbook) login(ctx context.Context) error {
	form := url.Values{"password": {s.password}, "next": {"/tree"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"spinbook/login", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.TrimSuffix(s.url, "/"))
	resp, err := newClient(false, 30*time.Second).Do(req)
	if err != nil {
		return fmt.Errorf("log in at the front door: %w", err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			s.cookie = c.Name + "=" + c.Value
			return nil
		}
	}
	return fmt.Errorf("log in at the front door: %s and no session cookie", resp.Status)
}

func (s *spinbook) down(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	_, err := s.run(ctx, "down")
	return time.Since(t0), err
}

// api reaches Jupyter through the front door with the session cookie.
func (s *spinbook) api() jupyterAPI {
	return jupyterAPI{
		base:   s.url,
		header: http.Header{"Cookie": {s.cookie}},
		origin: strings.TrimSuffix(s.url, "/"),
		client: newClient(true, 30*time.Second),
	}
}

// pids returns the agent's and its Jupyter's process ids, from the local
// backend's records.
func (s *spinbook) pids() (agent, jupyter int, err error) {
	dir := filepath.Join(s.dir, "state", "servers", s.user)
	var rec struct {
		PID int `json:"pid"`
	}
	for _, f := range []struct {
		name string
		pid  *int
	}{{"record.json", &agent}, {"agent/jupyter.json", &jupyter}} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return 0, 0, err
		}
		rec.PID = 0
		if err := json.Unmarshal(data, &rec); err != nil || rec.PID == 0 {
			return 0, 0, fmt.Errorf("%s: no pid (%v)", f.name, err)
		}
		*f.pid = rec.PID
	}
	return agent, jupyter, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// rssBytes returns a process's resident set size from /proc.
func rssBytes(pid int) (int64, error) { return procStatusBytes(pid, "VmRSS:") }

// anonBytes returns the part of a process's resident set that is its own:
// not pages of its executable, which every agent on a host shares.
func anonBytes(pid int) (int64, error) { return procStatusBytes(pid, "RssAnon:") }

func procStatusBytes(pid int, key string) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("pid %d: no %s in /proc/%d/status", pid, key, pid)
}
