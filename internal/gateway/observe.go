package gateway

import (
	"net/http"
	"strings"
	"time"
)

// An Observer learns what the front door does, for the agent's metrics
// (its /metrics on the health port). Its methods are called on every
// request and must be cheap and safe for concurrent use. What it is told
// is bounded: a route class, never a path; a status code; counts.
type Observer interface {
	// Request reports one request done: its RouteClass, the status code
	// sent (101 for a websocket) and how long the handler took (for a
	// websocket, its whole life).
	Request(route string, status int, d time.Duration)
	// LoginFailed reports a wrong password; LoginThrottled a login
	// refused by the rate limit before any check.
	LoginFailed()
	LoginThrottled()
	// Proxied reports n bytes passed between a client and Jupyter, in
	// direction "to_client" or "to_jupyter" (request bodies of plain HTTP
	// are not counted; websocket traffic is, both ways).
	Proxied(direction string, n int64)
}

// Route classes: every request is counted under one of these.
const (
	RouteLogin      = "login"       // /spinbook/login
	RouteLogout     = "logout"      // /logout, /spinbook/logout
	RouteControl    = "control"     // the control API, /spinbook/api/
	RouteSpinbook   = "spinbook"    // the gateway's other pages under /spinbook/
	RouteKernelWS   = "kernel_ws"   // a kernel's websocket
	RouteWebsocket  = "websocket"   // any other upgrade: terminals, events
	RouteAPIKernels = "api_kernels" // /api/kernels, /api/sessions
	RouteAPIContent = "api_contents"
	RouteAPI        = "api"    // the rest of /api/ and /lab/api/
	RouteStatic     = "static" // /static/, /lab/extensions/, /custom/, /nbextensions/ ...
	RouteFiles      = "files"  // /files/, /view/
	RoutePage       = "page"   // everything else: /lab, /tree, /notebooks/ ...
)

// RouteClasses lists every route class, for an observer to make its series
// up front.
var RouteClasses = []string{RouteLogin, RouteLogout, RouteControl, RouteSpinbook, RouteKernelWS, RouteWebsocket,
	RouteAPIKernels, RouteAPIContent, RouteAPI, RouteStatic, RouteFiles, RoutePage}

// RouteClass names the class of r's path: a bounded label, never the path.
func RouteClass(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == loginPath:
		return RouteLogin
	case p == "/logout" || p == logoutPath:
		return RouteLogout
	case strings.HasPrefix(p, ControlPrefix):
		return RouteControl
	case p == "/spinbook" || strings.HasPrefix(p, "/spinbook/"):
		return RouteSpinbook
	case isUpgrade(r) && strings.HasPrefix(p, "/api/kernels/"):
		return RouteKernelWS
	case isUpgrade(r):
		return RouteWebsocket
	case strings.HasPrefix(p, "/api/kernels") || strings.HasPrefix(p, "/api/sessions"):
		return RouteAPIKernels
	case strings.HasPrefix(p, "/api/contents"):
		return RouteAPIContent
	case strings.HasPrefix(p, "/api/") || p == "/api" || strings.HasPrefix(p, "/lab/api/"):
		return RouteAPI
	case strings.HasPrefix(p, "/static/") || strings.HasPrefix(p, "/lab/extensions/") || strings.HasPrefix(p, "/lab/static/") ||
		strings.HasPrefix(p, "/custom/") || strings.HasPrefix(p, "/nbextensions/") || strings.HasPrefix(p, "/kernelspecs/") ||
		p == "/favicon.ico":
		return RouteStatic
	case strings.HasPrefix(p, "/files/") || strings.HasPrefix(p, "/view/"):
		return RouteFiles
	}
	return RoutePage
}

// nopObserver is the Observer of a gateway given none.
type nopObserver struct{}

func (nopObserver) Request(string, int, time.Duration) {}
func (nopObserver) LoginFailed()                       {}
func (nopObserver) LoginThrottled()                    {}
func (nopObserver) Proxied(string, int64)              {}
