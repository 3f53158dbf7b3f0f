package agent

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spinbook/spinbook/internal/atomicfile"
	"github.com/spinbook/spinbook/internal/gateway"
	"github.com/spinbook/spinbook/internal/gitwork"
)

// Save results, the values of spinbook_saves_total's result label.
const (
	saveFailed         = "failed"           // the save returned an error
	saveBundleStored   = "bundle_stored"    // the remote was out of reach: a bundle went to the model store
	saveBundleOnServer = "bundle_on_server" // a bundle on the server's own disk only
	saveNewBranch      = "new_branch"       // pushed to a spinbook/<user>/<time> branch
	savePushed         = "pushed"           // pushed to the checked-out branch
	saveUpToDate       = "up_to_date"       // the remote held everything already
	saveNotSaved       = "not_saved"        // no error, yet not saved (see the log)
)

var saveResults = []string{saveFailed, saveBundleStored, saveBundleOnServer, saveNewBranch, savePushed, saveUpToDate, saveNotSaved}

// metrics are the agent's Prometheus series, served at /metrics on the
// health port (docs/metrics.md lists them). Every label value comes from a
// fixed list: route classes, status codes, directions, save results —
// never a path, a user's input or a secret.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	loginFailures  prometheus.Counter
	loginThrottled prometheus.Counter
	proxied        *prometheus.CounterVec
	saves          *prometheus.CounterVec
	restarts       prometheus.Counter
	kernelStates   *prometheus.GaugeVec // as of the last activity poll
}

// newMetrics registers the series; lastActive and stopAt give the gauges
// read at scrape time (nil, or a zero time, reads as 0).
func newMetrics(lastActive, stopAt func() time.Time) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spinbook_http_requests_total",
		Help: "Requests the front door answered, by route class and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "spinbook_http_request_duration_seconds",
		Help:    "Time the front door took to answer, by route class (a websocket: its whole life).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
	}, []string{"route"})
	m.loginFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spinbook_login_failures_total",
		Help: "Logins refused for a wrong password.",
	})
	m.loginThrottled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spinbook_login_throttled_total",
		Help: "Logins refused by the rate limit before any check.",
	})
	m.proxied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spinbook_proxied_bytes_total",
		Help: "Bytes passed between clients and Jupyter: responses to_client, websocket messages both ways.",
	}, []string{"direction"})
	m.saves = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spinbook_saves_total",
		Help: "Saves of the workspace to the team repo (spinbook save, idle stop, shutdown), by result.",
	}, []string{"result"})
	m.restarts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spinbook_jupyter_restarts_total",
		Help: "Times Jupyter was started again in this server (the agent starts it anew after it died), since the server's state directory was made.",
	})
	m.kernelStates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "spinbook_kernels",
		Help: "Jupyter's kernels by state as of the last activity poll (at most 15 s old): busy = a cell runs.",
	}, []string{"state"})
	m.reg.MustRegister(m.requests, m.latency, m.loginFailures, m.loginThrottled, m.proxied, m.saves, m.restarts, m.kernelStates,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spinbook_last_activity_timestamp_seconds",
			Help: "When a person or a kernel last did something (Unix time).",
		}, func() float64 { return unixSeconds(lastActive) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spinbook_idle_stop_deadline_timestamp_seconds",
			Help: "When the idle rules stop the server unless something changes (Unix time); 0 when nothing will.",
		}, func() float64 { return unixSeconds(stopAt) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every series exists from the start at 0, so that rate() and
	// increase() see the first event.
	for _, r := range gateway.RouteClasses {
		m.latency.WithLabelValues(r)
	}
	for _, d := range []string{"to_client", "to_jupyter"} {
		m.proxied.WithLabelValues(d)
	}
	m.kernels(0, 0)
	for _, r := range saveResults {
		m.saves.WithLabelValues(r)
	}
	return m
}

func unixSeconds(f func() time.Time) float64 {
	if f == nil {
		return 0
	}
	t := f()
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// handler serves the exposition (text format, or what the scraper asks
// for) to GET and HEAD.
func (m *metrics) handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// The gateway.Observer of the front door.

func (m *metrics) Request(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}
func (m *metrics) LoginFailed()    { m.loginFailures.Inc() }
func (m *metrics) LoginThrottled() { m.loginThrottled.Inc() }
func (m *metrics) Proxied(direction string, n int64) {
	m.proxied.WithLabelValues(direction).Add(float64(n))
}

var _ gateway.Observer = (*metrics)(nil)

// kernels records the last activity poll's count of kernels.
func (m *metrics) kernels(busy, idle int) {
	m.kernelStates.WithLabelValues("busy").Set(float64(busy))
	m.kernelStates.WithLabelValues("idle").Set(float64(idle))
}

// saved counts one save by its result.
func (m *metrics) saved(res gitwork.Result, err error) {
	m.saves.WithLabelValues(saveResult(res, err)).Inc()
}

func saveResult(res gitwork.Result, err error) string {
	switch {
	case err != nil:
		return saveFailed
	case res.StoredBundle != "":
		return saveBundleStored
	case res.Bundle != "":
		return saveBundleOnServer
	case res.NewBranch:
		return saveNewBranch
	case res.PushedTo != "" && res.Saved:
		return savePushed
	case res.UpToDate:
		return saveUpToDate
	}
	return saveNotSaved
}

// countJupyterStart counts a start of Jupyter in stateDir/jupyter-starts
// and adds the ones before it (restarts) to the counter. The count is
// best effort: a state directory that cannot be written counts nothing.
func (m *metrics) countJupyterStart(stateDir string) {
	if stateDir == "" {
		return
	}
	path := filepath.Join(stateDir, "jupyter-starts")
	n := 0
	if data, err := os.ReadFile(path); err == nil {
		n, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	} else if !errors.Is(err, os.ErrNotExist) {
		return
	}
	if err := atomicfile.Write(path, []byte(strconv.Itoa(n+1)+"\n"), 0o600); err != nil {
		return
	}
	if n > 0 {
		m.restarts.Add(float64(n))
	}
}

// healthHandler serves /metrics with metrics and everything else with
// health (gateway.NewHealth: /healthz, /readyz, 404).
func healthHandler(health, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		health.ServeHTTP(w, r)
	})
}

// lastActive is when the server was last active; zero before the idle
// tracker starts.
func (a *Agent) lastActive() time.Time {
	t := a.idleForMetrics.Load()
	if t == nil {
		return time.Time{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastActive
}

// stopAt is when the idle rules stop the server; zero for never.
func (a *Agent) stopAt() time.Time {
	t := a.idleForMetrics.Load()
	if t == nil {
		return time.Time{}
	}
	return t.verdict().StopAt
}
