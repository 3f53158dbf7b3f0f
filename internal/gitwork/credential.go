package gitwork

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// defaultUsername is sent with the token when the repo URL names no user;
// hosts that authenticate by token (GitHub, GitLab, Gitea) accept any.
const defaultUsername = "x-access-token"

// A CredentialServer answers git credential requests for one remote on a
// 0600 Unix socket in a private directory: the token stays in the agent's
// memory, and git (in the agent, a kernel or a terminal) gets it through
// the helper only when it asks for that remote's scheme and host.
type CredentialServer struct {
	ln       net.Listener
	scheme   string
	host     string
	username string
	token    string
	log      *slog.Logger
	done     chan struct{}
}

// ServeCredentials listens on socket (whose directory should be private)
// and answers requests for repoURL's scheme and host with token.
func ServeCredentials(socket, repoURL, token string, log *slog.Logger) (*CredentialServer, error) {
	u, err := url.Parse(repoURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("credential server: repo url is not a URL with a host")
	}
	if strings.ContainsAny(token, "\n\x00") {
		return nil, errors.New("credential server: the token holds a newline or NUL")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("credential socket: %w", err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("credential socket: %w", err)
	}
	s := &CredentialServer{ln: ln, scheme: u.Scheme, host: u.Host, username: u.User.Username(),
		token: token, log: log, done: make(chan struct{})}
	if s.username == "" {
		s.username = defaultUsername
	}
	go s.serve()
	return s, nil
}

// Close stops answering and removes the socket.
func (s *CredentialServer) Close() error {
	err := s.ln.Close()
	<-s.done
	os.Remove(s.ln.Addr().String())
	return err
}

func (s *CredentialServer) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.answer(c)
	}
}

// answer reads one request in git's credential format (key=value lines,
// ended by a blank line) and writes the username and token if it is for
// the remote, nothing otherwise.
func (s *CredentialServer) answer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := readCredential(c)
	if err != nil {
		return
	}
	if req["protocol"] != s.scheme || !strings.EqualFold(req["host"], s.host) {
		s.log.Info("git credential request for another host refused", "protocol", req["protocol"], "host", req["host"])
		io.WriteString(c, "\n")
		return
	}
	user := s.username
	if u := req["username"]; u != "" {
		user = u
	}
	fmt.Fprintf(c, "username=%s\npassword=%s\n\n", user, s.token)
}

// readCredential reads key=value lines up to a blank line or EOF.
func readCredential(r io.Reader) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			return m, nil
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, "\x00\n") {
			return nil, errors.New("malformed credential request")
		}
		m[k] = v
	}
	return m, sc.Err()
}

// CredentialHelper is `spinbook git-credential OPERATION`: git's
// credential helper protocol on in/out, answered by the agent's socket
// named in $SPINBOOK_GIT_CREDENTIALS. Only "get" asks; "store" and "erase"
// have nothing to do, as the agent holds the token.
func CredentialHelper(op string, in io.Reader, out io.Writer) error {
	req, err := readCredential(in)
	if err != nil {
		return fmt.Errorf("git-credential: %w", err)
	}
	if op != "get" {
		return nil
	}
	socket := os.Getenv(SocketEnv)
	if socket == "" {
		return fmt.Errorf("git-credential: $%s is not set: run git inside a spinbook server", SocketEnv)
	}
	if !filepath.IsAbs(socket) {
		return fmt.Errorf("git-credential: $%s is not an absolute path", SocketEnv)
	}
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return fmt.Errorf("git-credential: the server's agent does not answer: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for _, k := range []string{"protocol", "host", "path", "username"} {
		if v, ok := req[k]; ok {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	b.WriteString("\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return fmt.Errorf("git-credential: %w", err)
	}
	resp, err := readCredential(c)
	if err != nil {
		return fmt.Errorf("git-credential: %w", err)
	}
	if resp["password"] == "" {
		return nil // not our remote: git goes on to the next helper or prompt
	}
	_, err = fmt.Fprintf(out, "username=%s\npassword=%s\n\n", resp["username"], resp["password"])
	return err
}
