package portal

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/gateway"
	"github.com/spinbook/spinbook/internal/ui"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"duration": func(secs int64) string { return ui.Duration(time.Duration(secs) * time.Second) },
	"usd": func(v *float64) string {
		if v == nil {
			return "—"
		}
		return "$" + strconv.FormatFloat(math.Round(*v*100)/100, 'f', 2, 64)
	},
	"deref": func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	},
	"title": func(t string) any { return struct{ Title string }{t} },
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).ParseFS(templateFS, "templates/*.html"))

func staticFiles() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.FileServerFS(sub)
}

// pageData is what every page's layout needs, and each page's own part.
type pageData struct {
	Title  string
	Nav    string
	User   string
	Admin  bool
	CSRF   string
	Notice string
	Error  string

	Server   *serverView   // My servers
	Sizes    []string      // My servers
	LastSize string        // My servers: the size the person chose last
	Op       *opView       // My servers: the start or stop under way or just done
	Servers  []*serverView // Team
	Audit    []auditEntry  // Audit
	Tokens   []token       // Tokens
	NewToken string        // Tokens: the token just made, shown once
	Open     *openView     // the page that posts the open token
}

func (p *Portal) base(id who, title, nav string) pageData {
	d := pageData{Title: title, Nav: nav, User: id.User, Admin: id.Admin}
	if id.Session != nil {
		d.CSRF = id.Session.CSRF
	}
	return d
}

// render writes a page.
func (p *Portal) render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page; see the portal's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// message writes a page that only says something.
func (p *Portal) message(w http.ResponseWriter, code int, title, text, hint string) {
	p.render(w, code, "message", struct{ Title, Text, Hint string }{title, text, hint})
}

// fail answers an internal error: logged, and a page that says so without
// the details.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, err error) {
	p.log.Error("portal", "path", r.URL.Path, "err", err)
	p.message(w, http.StatusInternalServerError, "Something went wrong", "The portal could not do that.", "Try again; if it persists, the portal's log says why.")
}

// notices are what a page says after an action that redirected to it.
var notices = map[string]string{
	"save":   "Saved.",
	"extend": "The idle stop is postponed.",
}

// serverView is what the pages show of a server: the fields of its status
// object, and what the portal adds.
type serverView struct {
	User           string    `json:"user"`
	Backend        string    `json:"backend"`
	State          string    `json:"state"`
	Ready          bool      `json:"ready"`
	URL            string    `json:"url"`
	StartedAt      time.Time `json:"started_at"`
	Detail         string    `json:"detail"`
	Size           string    `json:"size"`
	UptimeSeconds  int64     `json:"uptime_seconds"`
	IdleSeconds    int64     `json:"idle_seconds"`
	StopsInSeconds *int64    `json:"stops_in_seconds"`
	Warning        string    `json:"warning"`
	StopBlocked    string    `json:"stop_blocked"`
	CostPerHour    *float64  `json:"cost_per_hour"`
	CostSoFar      *float64  `json:"cost_so_far"`

	CostToday *float64 `json:"-"`
	CostMonth *float64 `json:"-"`
	// LastError says why the portal's last start or stop of it failed
	// (such as a stop refused because the work could not be saved).
	LastError string `json:"-"`
}

func parseView(data json.RawMessage) *serverView {
	v := &serverView{}
	_ = json.Unmarshal(data, v)
	return v
}

// Running is true for a server whose agent runs.
func (v *serverView) Running() bool { return v.State == "running" }

// opView is an operation as a page shows it.
type opView struct {
	Action string
	Events []string
	Done   bool
	Error  string
}

// myServers is the home page: the person's own server.
func (p *Portal) myServers(w http.ResponseWriter, r *http.Request, id who) {
	d := p.base(id, "My server", "mine")
	d.Sizes = p.cfg.SizeNames()
	d.LastSize, _, _ = p.store.setting(r.Context(), id.User, "size")
	status, err := p.servers.Status(r.Context(), id.User)
	if err != nil {
		d.Error = "The portal could not ask for your server's status: " + err.Error()
		d.Server = &serverView{User: id.User, State: "unknown"}
	} else {
		d.Server = parseView(status)
		p.addCost(r.Context(), d.Server)
	}
	if o := p.operation(id.User); o != nil {
		events, done, _, opErr, _ := o.snapshot(0)
		if !done || p.now().Sub(o.Began) < 10*time.Minute {
			d.Op = &opView{Action: o.Action, Events: events, Done: done}
			if opErr != nil {
				d.Op.Error = opErr.Error()
			}
		}
	}
	d.Notice = notices[r.URL.Query().Get("done")] // fixed texts: a link cannot put words on the page
	p.render(w, http.StatusOK, "mine", d)
}

// addCost fills in what v's server cost today and this month, from the
// runs the portal saw, bringing those up to date with what runs.
func (p *Portal) addCost(ctx context.Context, v *serverView) {
	now := p.now()
	if v.Running() {
		var price *float64
		if v.CostPerHour != nil {
			price = v.CostPerHour
		}
		started := v.StartedAt
		if started.IsZero() {
			started = now
		}
		_ = p.store.runStarted(ctx, v.User, v.Size, price, started)
	} else if v.State != "unknown" {
		_ = p.store.runStopped(ctx, v.User, now)
	}
	y, m, day := now.Date()
	if c, ok, err := p.store.costSince(ctx, v.User, time.Date(y, m, day, 0, 0, 0, 0, now.Location()), now); err == nil && ok {
		v.CostToday = &c
	}
	if c, ok, err := p.store.costSince(ctx, v.User, time.Date(y, m, 1, 0, 0, 0, 0, now.Location()), now); err == nil && ok {
		v.CostMonth = &c
	}
}

// team is the admins' page: every server.
func (p *Portal) team(w http.ResponseWriter, r *http.Request, id who) {
	if !id.Admin {
		p.message(w, http.StatusForbidden, "Admins only", "The Team page is for the portal's admins.", "Your own server is on My server.")
		return
	}
	d := p.base(id, "Team", "team")
	all, err := p.servers.List(r.Context())
	if err != nil {
		d.Error = "The portal could not list the servers: " + err.Error()
	}
	for _, s := range all {
		v := parseView(s)
		p.addCost(r.Context(), v)
		if o := p.operation(v.User); o != nil {
			if _, done, _, err, _ := o.snapshot(0); done && err != nil && p.now().Sub(o.Began) < 10*time.Minute {
				v.LastError = o.Action + " failed: " + err.Error()
			}
		}
		d.Servers = append(d.Servers, v)
	}
	d.Notice = notices[r.URL.Query().Get("done")] // fixed texts: a link cannot put words on the page
	p.render(w, http.StatusOK, "team", d)
}

// auditPage shows the audit log: everything to admins, to others what
// they did and what was done to their server.
func (p *Portal) auditPage(w http.ResponseWriter, r *http.Request, id who) {
	d := p.base(id, "Audit log", "audit")
	whose := id.User
	if id.Admin {
		whose = ""
	}
	var err error
	if d.Audit, err = p.store.auditLog(r.Context(), whose, 500); err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, http.StatusOK, "audit", d)
}

func (p *Portal) tokensPage(w http.ResponseWriter, r *http.Request, id who) {
	p.renderTokens(w, r, id, "")
}

func (p *Portal) renderTokens(w http.ResponseWriter, r *http.Request, id who, newToken string) {
	d := p.base(id, "API tokens", "tokens")
	d.NewToken = newToken
	var err error
	if d.Tokens, err = p.store.tokens(r.Context(), id.User); err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, http.StatusOK, "tokens", d)
}

// createToken makes a personal API token and shows it, once.
func (p *Portal) createToken(w http.ResponseWriter, r *http.Request, id who) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" {
		name = "token"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	tok := newAPIToken()
	if err := p.store.createToken(r.Context(), id.User, name, tok, p.now()); err != nil {
		p.fail(w, r, err)
		return
	}
	p.record(r, id, "create token", id.User, "ok")
	p.renderTokens(w, r, id, tok)
}

func (p *Portal) revokeToken(w http.ResponseWriter, r *http.Request, id who) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		p.message(w, http.StatusNotFound, "No such token", "You have no such token.", "")
		return
	}
	ok, err := p.store.revokeToken(r.Context(), id.User, n)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if !ok {
		p.message(w, http.StatusNotFound, "No such token", "You have no such token.", "")
		return
	}
	p.record(r, id, "revoke token", id.User, "ok")
	http.Redirect(w, r, "/tokens", http.StatusSeeOther)
}

// serverAction is a page's POST /servers/{user}/{action}.
func (p *Portal) serverAction(w http.ResponseWriter, r *http.Request, id who) {
	user, action := r.PathValue("user"), r.PathValue("action")
	if ae := target(id, user); ae != nil {
		p.record(r, id, validAction(action), validOr(user), "refused: not visible to "+id.User)
		p.message(w, ae.Code, "Not found", ae.Msg, "")
		return
	}
	back := "/"
	if user != id.User {
		back = "/team"
	}
	if action == "open" {
		p.open(w, r, id, user)
		return
	}
	req := actionRequest{
		Size:    r.PostForm.Get("size"),
		Force:   r.PostForm.Get("force") == "1",
		Message: r.PostForm.Get("message"),
		For:     r.PostForm.Get("for"),
	}
	if ae := p.check(action, &req); ae != nil {
		p.message(w, ae.Code, "Cannot do that", ae.Msg, "Go back and try again.")
		return
	}
	switch action {
	case "start", "stop":
		if _, ae := p.startOrStop(r, id, user, action, req); ae != nil {
			p.message(w, ae.Code, "Busy", ae.Msg, "")
			return
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	default:
		if _, err := p.saveOrExtend(r, id, user, action, req); err != nil {
			p.message(w, errorCode(err), "Could not "+action, err.Error(), "")
			return
		}
		http.Redirect(w, r, back+"?done="+action, http.StatusSeeOther)
	}
}

// events streams the progress of the start or stop of user's server.
func (p *Portal) events(w http.ResponseWriter, r *http.Request, id who) {
	user := r.PathValue("user")
	if ae := target(id, user); ae != nil {
		p.message(w, ae.Code, "Not found", ae.Msg, "")
		return
	}
	o := p.operation(user)
	if o == nil {
		http.Error(w, "no start or stop under way", http.StatusNotFound)
		return
	}
	p.stream(w, r, o)
}

// openView is the page that posts an open token to a server.
type openView struct {
	Action string // the server's /spinbook/portal-login
	Token  string
}

// open sends the browser into the person's own server with a one-time
// token: a page whose form posts it to the server's front door (a POST,
// so the token is in no URL, history or Referer), submitted by script at
// once, or by a button. Nobody opens another person's server this way,
// admins neither.
func (p *Portal) open(w http.ResponseWriter, r *http.Request, id who, user string) {
	if user != id.User {
		p.message(w, http.StatusForbidden, "Not yours", "You can open only your own server.", "")
		p.record(r, id, "open", user, "refused: not the owner")
		return
	}
	status, err := p.servers.Status(r.Context(), user)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := parseView(status)
	if !v.Running() || v.URL == "" {
		p.message(w, http.StatusConflict, "Not running", "Your server is not running.", "Start it first.")
		return
	}
	origin, err := originOf(v.URL)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	now := p.now()
	tok, err := gateway.SignOpenToken(p.key, gateway.OpenClaims{Subject: user, Audience: origin, IssuedAt: now.Unix(), Expires: now.Add(30 * time.Second).Unix()})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.record(r, id, "open", user, "ok")
	w.Header().Set("Content-Security-Policy", pagePolicy(origin))
	d := p.base(id, "Opening your server", "mine")
	d.Open = &openView{Action: origin + "/spinbook/portal-login", Token: tok}
	p.render(w, http.StatusOK, "open", d)
}
