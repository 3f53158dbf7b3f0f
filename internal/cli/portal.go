package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/portal"
	"github.com/spinbook/spinbook/internal/secret"
)

// portalConfig is the portal's config: the config file's, or, when the
// environment has it (the portal's ECS task on aws, which cannot mount a
// file), the YAML text in $SPINBOOK_CONFIG_YAML; $SPINBOOK_PORTAL_LISTEN
// and $SPINBOOK_PORTAL_URL then stand over portal.listen and portal.url,
// $SPINBOOK_PORTAL_TRUSTED_PROXIES over portal.trusted_proxies.
func portalConfig(e *env, getenv func(string) string) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if text := getenv(aws.PortalConfigEnv); text != "" {
		if cfg, err = config.Parse([]byte(text), "$"+aws.PortalConfigEnv); err != nil {
			return nil, err
		}
	} else if cfg, err = e.loadConfig(); err != nil {
		return nil, err
	}
	if v := getenv(aws.PortalListenEnv); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return nil, usagef("$%s: %q is not HOST:PORT (example: 0.0.0.0:8700)", aws.PortalListenEnv, v)
		}
		cfg.Portal.Listen = v
	}
	if v := getenv(aws.PortalURLEnv); v != "" {
		if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			return nil, usagef("$%s: %q is not an http(s) URL (example: https://notebooks.example.com)", aws.PortalURLEnv, v)
		}
		cfg.Portal.URL = v
	}
	if v := getenv(aws.PortalTrustedProxiesEnv); v != "" {
		cfg.Portal.TrustedProxies, cfg.Portal.TrustedPrefixes = []string{}, []netip.Prefix{}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return nil, usagef("$%s: %q is not a CIDR or an IP address (example: 10.0.0.0/16)", aws.PortalTrustedProxiesEnv, s)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			cfg.Portal.TrustedProxies = append(cfg.Portal.TrustedProxies, s)
			cfg.Portal.TrustedPrefixes = append(cfg.Portal.TrustedPrefixes, p.Masked())
		}
	}
	return cfg, nil
}

// portalAddress is where the portal listens and the URL people open.
func portalAddress(cfg *config.Config) (listen, url string) {
	listen = cfg.Portal.Listen
	if listen == "" {
		listen = config.DefaultPortalListen
	}
	url = cfg.Portal.URL
	if url == "" {
		url = "http://" + listen
	}
	return listen, url
}

func newPortal(e *env) *cobra.Command {
	var stateDir string
	var resetAdmin bool
	cmd := &cobra.Command{
		Use:   "portal",
		Short: "Serve the team's web portal: sign in, start, open and stop servers from a browser",
		Long: `Serve the team portal: a web page (and a JSON API under /api/v1/) where
people sign in and start, stop, save, extend and open their own server, and
admins see every server with its cost and stop any. The portal drives the
backend the config names, with the credentials of the machine it runs on;
people need only their sign-in.

Sign-in is OpenID Connect (portal.oidc; the provider must allow the redirect
URI PORTAL_URL/oidc/callback) or passwords (portal.users.NAME.
password_hash, from ` + "`spinbook password`" + `). With neither, the first start makes an
admin login, "admin", and prints its password once.

"Open" takes a person into their server without a second password: the
portal signs a one-time token (valid 60 seconds at most) that the server's
front door checks with the portal's public key, which every server the
portal starts is given. access.portal_only: true turns the servers'
password login off.

The portal keeps its own state (sessions, API tokens hashed, the audit log,
its signing key) in --state-dir, 0700; what runs stays the backend's to say,
so the portal can be restarted at any time. See docs/portal.md.

With $SPINBOOK_CONFIG_YAML set, the portal reads its config from that YAML
text instead of a file, and $SPINBOOK_PORTAL_LISTEN / $SPINBOOK_PORTAL_URL
stand over portal.listen / portal.url: how the portal's ECS service in the
aws site stack runs it (docs/aws.md, "The portal on AWS").`,
		Example: `  spinbook portal                          # http://127.0.0.1:8700, a generated admin login
  spinbook portal --config team.yaml       # portal.listen, portal.url, portal.oidc from the config
  spinbook portal --reset-admin            # forget the generated admin's password; the next start prints a new one`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := portalConfig(e, os.Getenv)
			if err != nil {
				return err
			}
			if stateDir == "" {
				stateDir = filepath.Join(cfg.Local.StateDir, "portal")
			}
			if resetAdmin {
				if err := portal.ResetAdmin(cmd.Context(), stateDir); err != nil {
					return fmt.Errorf("portal --reset-admin: %w", err)
				}
				fmt.Fprintln(e.stdout, "the generated admin's password is forgotten; the next `spinbook portal` prints a new one")
				return nil
			}
			be, err := openBackend(cfg, e.logger())
			if err != nil {
				return err
			}
			key, err := portal.LoadKey(stateDir)
			if err != nil {
				return err
			}
			listen, url := portalAddress(cfg)
			var oidc *portal.OIDC
			if o := cfg.Portal.OIDC; o.Enabled() {
				secretValue, err := secret.Resolve(cmd.Context(), o.ClientSecret)
				if err != nil {
					return usagef("portal.oidc.client_secret: %w", err)
				}
				if oidc, err = portal.NewOIDC(cmd.Context(), o, secretValue, url); err != nil {
					return err
				}
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			p, err := portal.New(cmd.Context(), portal.Options{
				OIDC:     oidc,
				Config:   cfg,
				Servers:  &portalServers{cfg: cfg, be: be, portalKey: portal.PublicKey(key), log: e.logger()},
				StateDir: stateDir,
				Key:      key,
				Out:      e.stdout,
				Logger:   log,
			})
			if err != nil {
				return err
			}
			defer p.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("portal: listen on %s: %w (set portal.listen to a free address)", listen, err)
			}
			fmt.Fprintf(e.stdout, "spinbook portal for the %s backend: %s\n", be.Name(), url)
			srv := &http.Server{
				Handler:           p,
				ReadHeaderTimeout: 10 * time.Second,
				IdleTimeout:       2 * time.Minute,
				MaxHeaderBytes:    64 << 10,
				ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return fmt.Errorf("portal: %w", err)
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "where the portal keeps its database and signing key (default: local.state_dir/portal)")
	cmd.Flags().BoolVar(&resetAdmin, "reset-admin", false, "forget the generated admin's password, so that the next start prints a new one")
	return cmd
}

// portalServers is what the portal does to servers: the code of up, down,
// save, extend, status and ls, with the portal's key in every server it
// starts.
type portalServers struct {
	cfg       *config.Config
	be        backend.Backend
	portalKey string
	log       *slog.Logger
}

var _ portal.Servers = (*portalServers)(nil)

func (s *portalServers) Start(ctx context.Context, user, size string, progress func(string)) (json.RawMessage, error) {
	res, err := startServer(ctx, s.cfg, s.be, startOptions{User: user, Size: size, PortalKey: s.portalKey}, func(ev backend.Event) { progress(ev.Message) })
	if err != nil {
		return nil, err
	}
	// A generated password is not shown to anyone: the portal's Open is
	// the way in.
	return json.Marshal(serverJSON{Server: res.Server, IdleJSON: idleOf(ctx, res.Server)})
}

func (s *portalServers) Stop(ctx context.Context, user string, purge, force bool, progress func(string)) (json.RawMessage, error) {
	w := &progressWriter{progress: progress}
	out, _, err := stopServer(ctx, &env{stdout: io.Discard, stderr: w}, s.cfg, s.be, user, purge, false, force)
	w.flush()
	if _, ok := errors.AsType[refusedError](err); ok {
		return nil, fmt.Errorf("%w: %w", portal.ErrRefused, err)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func (s *portalServers) Save(ctx context.Context, user, message string) (json.RawMessage, error) {
	srv, err := s.be.Status(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	if srv.State != backend.Running {
		return nil, fmt.Errorf("%w: save: %s's server is %s; start it first", portal.ErrRefused, user, srv.State)
	}
	out, err := saveServer(ctx, srv, message)
	if err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	return json.Marshal(out)
}

func (s *portalServers) Extend(ctx context.Context, user string, d time.Duration) (json.RawMessage, error) {
	out, err := extendServer(ctx, s.be, user, d)
	if _, ok := errors.AsType[refusedError](err); ok {
		return nil, fmt.Errorf("%w: %w", portal.ErrRefused, err)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(extendJSON{User: user, IdleJSON: out})
}

func (s *portalServers) Status(ctx context.Context, user string) (json.RawMessage, error) {
	srv, err := s.be.Status(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return json.Marshal(serverJSON{Server: srv, IdleJSON: idleOf(ctx, srv)})
}

func (s *portalServers) List(ctx context.Context) ([]json.RawMessage, error) {
	servers, err := s.be.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("ls: %w", err)
	}
	idles := idleOfAll(ctx, s.be, servers)
	out := make([]json.RawMessage, 0, len(servers))
	for i, srv := range servers {
		data, err := json.Marshal(serverJSON{Server: srv, IdleJSON: idles[i]})
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

// progressWriter turns the lines down writes to stderr into progress
// messages, without the elapsed time ui.Progress puts in front.
type progressWriter struct {
	mu       sync.Mutex
	buf      strings.Builder
	progress func(string)
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	s := w.buf.String()
	for {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok {
			break
		}
		w.emit(line)
		s = rest
	}
	w.buf.Reset()
	w.buf.WriteString(s)
	return len(b), nil
}

func (w *progressWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit(w.buf.String())
	w.buf.Reset()
}

func (w *progressWriter) emit(line string) {
	line = strings.TrimSpace(line)
	if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[0], "s") {
		if _, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "s"), 64); err == nil {
			line = strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		}
	}
	if line != "" {
		w.progress(line)
	}
}
