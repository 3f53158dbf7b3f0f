package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
)

// pagePolicy is the Content-Security-Policy of the gateway's own pages:
// inline style and nothing else (they have no script, image or font), a
// form may post only here, and no other site may frame them.
const pagePolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// logoutScript submits the logout page's form; the page carries it only
// when the GET came from this origin (logoutPage). It must be exactly the
// text between the page's <script> tags: the page's policy admits it by
// its hash and nothing else.
const logoutScript = `document.getElementById("logout").submit();`

// logoutPagePolicy is pagePolicy plus logoutScript.
var logoutPagePolicy = func() string {
	sum := sha256.Sum256([]byte(logoutScript))
	return pagePolicy + "; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// setPageHeaders sets the headers of every response the gateway writes
// itself.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Messages on the login page.
const (
	msgWrongPassword = "Wrong password."
	msgLoggedOut     = "You are logged out."
)

// A message is the content of a page that only says something.
type message struct {
	Title string
	Text  string
	Hint  string
}

var (
	pageNotAllowed = message{
		Title: "Not allowed",
		Text:  "Your address is not on this server's allowlist.",
		Hint:  "Ask the admin to add your network to access.allow.",
	}
	pageMisdirected = message{
		Title: "Wrong address",
		Text:  "This server does not answer to the name in this request.",
		Hint:  "Open the server by the address spinbook printed; an admin can add more names with access.hosts.",
	}
	pageCrossSite = message{
		Title: "Cross-site request refused",
		Text:  "This request came from another site, so the server refused it.",
		Hint:  "Open the server's own page and try again there.",
	}
	pageBadOrigin = message{
		Title: "Connection refused",
		Text:  "This connection did not come from the server's own page.",
		Hint:  "Open the server's own page and try again there.",
	}
	pageNotFound = message{
		Title: "Not found",
		Text:  "There is nothing here.",
	}
	pageMethod = message{
		Title: "Method not allowed",
		Text:  "This page does not accept that kind of request.",
	}
	pageTooLarge = message{
		Title: "Request too large",
		Text:  "The login form was too large.",
	}
	pageBadForm = message{
		Title: "Bad request",
		Text:  "The login form could not be read.",
	}
	pageBusy = message{
		Title: "Busy",
		Text:  "The server is busy checking other logins.",
		Hint:  "Try again in a moment.",
	}
	pageOpenRefused = message{
		Title: "Could not open",
		Text:  "This link from the portal is not valid here: it was used already, expired, or is for another server.",
		Hint:  "Go back to the portal and press Open again.",
	}
	pageOpenRateLimited = message{
		Title: "Too many attempts",
		Text:  "Too many failed logins came from your address.",
		Hint:  "Wait a minute, then press Open in the portal again.",
	}
	pagePortalOnly = message{
		Title: "Open this server from the portal",
		Text:  "Password login is turned off on this server (access.portal_only).",
		Hint:  "Sign in to your team's spinbook portal and press Open.",
	}
	pageUpstream = message{
		Title: "Jupyter is not answering",
		Text:  "Jupyter is not answering (it may be starting or busy).",
		Hint:  "Reload the page in a few seconds.",
	}
)

// writeMessage writes the page for m with status code. A non-empty
// address is shown as the client's own address.
func (g *Gateway) writeMessage(w http.ResponseWriter, code int, m message, address string) {
	g.writePage(w, code, "message", struct {
		message
		Address string
	}{m, address})
}

// writeLogin writes the login form. An error message is shown as an alert.
func (g *Gateway) writeLogin(w http.ResponseWriter, code int, next, msg string, isError bool) {
	title := "spinbook"
	if g.user != "" {
		title += " — " + g.user
	}
	g.writePage(w, code, "login", struct {
		Title, User, Next, Message string
		Error                      bool
	}{Title: title, User: g.user, Next: next, Message: msg, Error: isError})
}

func (g *Gateway) writePage(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		g.log.Error("render page", "page", name, "err", err)
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("internal error\n")
	}
	h := w.Header()
	setPageHeaders(h)
	if name == "logout" {
		h.Set("Content-Security-Policy", logoutPagePolicy)
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

var pages = template.Must(template.New("pages").Parse(`
{{- define "head" -}}
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.}}</title>
<style>
:root { color-scheme: light dark; --bg: #f4f5f7; --card: #fff; --fg: #1d2330; --muted: #5d6676; --line: #d5d9e0; --accent: #2f6fdb; --on-accent: #fff; --bad: #b42318; --bad-bg: #fdecea; }
@media (prefers-color-scheme: dark) { :root { --bg: #15181e; --card: #1f232b; --fg: #e6e9ef; --muted: #9aa3b2; --line: #363c48; --accent: #6c9cf0; --on-accent: #0d1526; --bad: #ff8a80; --bad-bg: #3a1f1f; } }
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { display: flex; align-items: center; justify-content: center; padding: 1rem; background: var(--bg); color: var(--fg); font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { width: 100%; max-width: 22rem; background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 2rem; box-shadow: 0 4px 24px rgba(0, 0, 0, .06); }
h1 { margin: 0 0 .25rem; font-size: 1.25rem; font-weight: 600; }
.brand { margin: 0 0 1.5rem; color: var(--muted); font-size: .9rem; }
.brand b { color: var(--fg); font-weight: 600; }
label { display: block; margin-bottom: .4rem; font-size: .9rem; font-weight: 500; }
input[type=password] { width: 100%; padding: .6rem .75rem; border: 1px solid var(--line); border-radius: 8px; background: transparent; color: inherit; font: inherit; }
input[type=password]:focus { outline: 2px solid var(--accent); outline-offset: 1px; border-color: var(--accent); }
button { width: 100%; margin-top: 1rem; padding: .65rem; border: 0; border-radius: 8px; background: var(--accent); color: var(--on-accent); font: inherit; font-weight: 600; cursor: pointer; }
button:hover { filter: brightness(1.08); }
.msg { margin: 0 0 1rem; padding: .6rem .75rem; border-radius: 8px; background: var(--bg); font-size: .9rem; }
.msg.bad { background: var(--bad-bg); color: var(--bad); }
p { margin: 0 0 .75rem; }
.hint { color: var(--muted); font-size: .9rem; margin: 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
</style>
</head>
{{- end}}

{{- define "login" -}}
{{template "head" .Title}}
<body>
<main>
<h1>Log in</h1>
<p class="brand">spinbook{{if .User}} server of <b>{{.User}}</b>{{end}}</p>
{{- if .Message}}
<p class="msg{{if .Error}} bad{{end}}"{{if .Error}} role="alert"{{end}}>{{.Message}}</p>
{{- end}}
<form method="post" action="/spinbook/login">
<input type="text" name="username" value="{{.User}}" autocomplete="username" hidden>
<input type="hidden" name="next" value="{{.Next}}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
{{end}}

{{- define "logout" -}}
{{template "head" .Title}}
<body>
<main>
<h1>Log out</h1>
<p class="brand">spinbook{{if .User}} server of <b>{{.User}}</b>{{end}}</p>
<form id="logout" method="post" action="/spinbook/logout">
<p>End this browser's session on the server?</p>
<button type="submit">Log out</button>
</form>
{{- if .Auto}}
<script>document.getElementById("logout").submit();</script>
{{- end}}
</main>
</body>
</html>
{{end}}

{{- define "message" -}}
{{template "head" (printf "%s — spinbook" .Title)}}
<body>
<main>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{- if .Address}}
<p>Your address: <code>{{.Address}}</code></p>
{{- end}}
{{- if .Hint}}
<p class="hint">{{.Hint}}</p>
{{- end}}
</main>
</body>
</html>
{{end}}
`))
