package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tokenPrefix starts every personal API token: "sbp_" and 43 base64url
// characters (32 random bytes).
const tokenPrefix = "sbp_"

// newAPIToken makes a personal API token.
func newAPIToken() string { return tokenPrefix + randomString(32) }

// api wraps an API handler: it needs a live personal API token in
// "Authorization: Bearer"; cookies count for nothing here.
func (p *Portal) api(h func(http.ResponseWriter, *http.Request, who)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || !strings.HasPrefix(tok, tokenPrefix) || len(tok) != len(tokenPrefix)+43 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spinbook portal"`)
			apiError(w, http.StatusUnauthorized, "no API token: send \"Authorization: Bearer sbp_...\", a token made on the portal's Tokens page (or run `spinbook login PORTAL_URL`)")
			return
		}
		client := p.clientIP(r)
		user, ok, err := p.store.tokenUser(r.Context(), tok, p.now())
		if err != nil {
			p.log.Error("api token", "err", err)
			apiError(w, http.StatusInternalServerError, "the portal could not check the token: try again; if it persists, see the portal's log")
			return
		}
		if !ok {
			// A bad token costs its sender: past a burst, the answer is 429
			// (a good token is never held up by someone else's bad ones).
			if ok, wait := p.apiLimiter.allow(client, p.now()); !ok {
				p.metrics.throttled.WithLabelValues("api_token").Inc()
				w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
				apiError(w, http.StatusTooManyRequests, "too many requests with bad API tokens from your address: wait a little, and check the token")
				return
			}
			p.apiLimiter.failed(client, p.now())
			p.log.Warn("api token refused", "client", client)
			w.Header().Set("WWW-Authenticate", `Bearer realm="spinbook portal", error="invalid_token"`)
			apiError(w, http.StatusUnauthorized, "the API token is unknown or revoked: make a new one on the portal's Tokens page")
			return
		}
		h(w, r, who{User: user, Admin: p.isAdmin(r.Context(), user)})
	}
}

// isAdmin says whether user is an admin now. For API tokens that is the
// config's say (portal.users.NAME.admin, the generated admin), or for OIDC
// users what their last sign-in said (kept as a setting).
func (p *Portal) isAdmin(ctx context.Context, user string) bool {
	if u, ok := p.users[user]; ok {
		return u.Admin
	}
	v, _, _ := p.store.setting(ctx, user, "admin")
	return v == "true"
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code, data = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(data, '\n'))
}

func (p *Portal) apiMe(w http.ResponseWriter, r *http.Request, id who) {
	writeJSON(w, http.StatusOK, map[string]any{"user": id.User, "admin": id.Admin})
}

// visibleServers is every server id may see, as ls --json elements.
func (p *Portal) visibleServers(r *http.Request, id who) ([]json.RawMessage, error) {
	all, err := p.servers.List(r.Context())
	if err != nil {
		return nil, err
	}
	out := []json.RawMessage{}
	for _, s := range all {
		var v struct {
			User string `json:"user"`
		}
		if json.Unmarshal(s, &v) == nil && id.mayAct(v.User) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (p *Portal) apiList(w http.ResponseWriter, r *http.Request, id who) {
	out, err := p.visibleServers(r, id)
	if err != nil {
		p.log.Error("list servers", "err", err)
		apiError(w, http.StatusInternalServerError, "list servers: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (p *Portal) apiStatus(w http.ResponseWriter, r *http.Request, id who) {
	user := r.PathValue("user")
	if ae := target(id, user); ae != nil {
		apiError(w, ae.Code, ae.Msg)
		return
	}
	res, err := p.servers.Status(r.Context(), user)
	if err != nil {
		apiError(w, errorCode(err), "status: "+err.Error())
		return
	}
	writeRaw(w, http.StatusOK, res)
}

func writeRaw(w http.ResponseWriter, code int, data json.RawMessage) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(data, '\n'))
}

// apiAction is POST /api/v1/servers/{user}/{action}.
func (p *Portal) apiAction(w http.ResponseWriter, r *http.Request, id who) {
	user, action := r.PathValue("user"), r.PathValue("action")
	if ae := target(id, user); ae != nil {
		p.record(r, id, validAction(action), validOr(user), "refused: not visible to "+id.User)
		apiError(w, ae.Code, ae.Msg)
		return
	}
	var req actionRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		apiError(w, http.StatusBadRequest, "the request body is too large or could not be read")
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("the body is not the JSON this call takes (%v): see docs/portal.md", err))
			return
		}
	}
	if ae := p.check(action, &req); ae != nil {
		apiError(w, ae.Code, ae.Msg)
		return
	}
	if action == "save" || action == "extend" {
		res, err := p.saveOrExtend(r, id, user, action, req)
		if err != nil {
			apiError(w, errorCode(err), action+": "+err.Error())
			return
		}
		writeRaw(w, http.StatusOK, res)
		return
	}
	o, ae := p.startOrStop(r, id, user, action, req)
	if ae != nil {
		apiError(w, ae.Code, ae.Msg)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		p.stream(w, r, o)
		return
	}
	res, err, ok := o.wait(r.Context())
	if !ok {
		return // the client left; the operation goes on
	}
	if err != nil {
		apiError(w, errorCode(err), action+": "+err.Error())
		return
	}
	writeRaw(w, http.StatusOK, res)
}

// stream sends o's progress as server-sent events: "progress" events
// ({"message":...}), then one "done" (the result) or "error"
// ({"error":...}).
func (p *Portal) stream(w http.ResponseWriter, r *http.Request, o *operation) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	sent := 0
	for {
		events, done, res, err, changed := o.snapshot(sent)
		for _, e := range events {
			data, _ := json.Marshal(map[string]string{"message": e})
			fmt.Fprintf(w, "event: progress\ndata: %s\n\n", data)
		}
		sent += len(events)
		if done {
			if err != nil {
				data, _ := json.Marshal(map[string]string{"error": err.Error()})
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
			} else {
				fmt.Fprintf(w, "event: done\ndata: %s\n\n", compact(res))
			}
			_ = rc.Flush()
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
	}
}

// compact is data on one line, as an SSE data field must be.
func compact(data json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return []byte("{}")
	}
	return b.Bytes()
}

// metricsPage is GET /metrics: the fleet's metrics for Prometheus, to an
// admin's API token only (user names and costs are in them).
func (p *Portal) metricsPage(w http.ResponseWriter, r *http.Request, id who) {
	if !id.Admin {
		apiError(w, http.StatusForbidden, "/metrics is for the portal's admins: scrape it with an admin's API token")
		return
	}
	p.metrics.handler().ServeHTTP(w, r)
}

// fleet is every server as the Team page shows it, costs included.
func (p *Portal) fleet(ctx context.Context) ([]*serverView, error) {
	all, err := p.servers.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*serverView, 0, len(all))
	for _, s := range all {
		v := parseView(s)
		p.addCost(ctx, v)
		out = append(out, v)
	}
	return out, nil
}
