package portal

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The portal's fleet metrics, for Prometheus at GET /metrics with an
// admin's API token (docs/metrics.md): the servers by state and what the
// running ones cost, what people did through the portal, and the sign-in
// and token throttles. Label values come from fixed sets (states, actions,
// results) and from user and size names, which the config bounds.

// fleetCacheFor is how long one listing of the servers serves scrapes:
// a backend's list can be a cloud API call.
const fleetCacheFor = 15 * time.Second

// serverStates are the values of spinbook_portal_servers' state label.
var serverStates = []string{"ready", "starting", "stopped", "failed"}

type portalMetrics struct {
	reg       *prometheus.Registry
	actions   *prometheus.CounterVec
	throttled *prometheus.CounterVec
	listFails prometheus.Counter
	fleet     *fleetCollector
}

func newPortalMetrics(list func(ctx context.Context) ([]*serverView, error), now func() time.Time) *portalMetrics {
	m := &portalMetrics{reg: prometheus.NewRegistry()}
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spinbook_portal_actions_total",
		Help: "What people did through the portal (sign in, start, stop, save, extend, open, tokens), by result: ok, refused (not allowed, wrong password) or failed.",
	}, []string{"action", "result"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spinbook_portal_throttled_total",
		Help: "Requests answered 429 by the portal's limits: sign_in (wrong passwords from one address), api_token (bad API tokens from one address).",
	}, []string{"limit"})
	m.listFails = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spinbook_portal_list_errors_total",
		Help: "Scrapes for which the backend's list of servers failed (the fleet series are then missing).",
	})
	m.fleet = &fleetCollector{list: list, now: now, fails: m.listFails}
	m.reg.MustRegister(m.actions, m.throttled, m.listFails, m.fleet,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, l := range []string{"sign_in", "api_token"} {
		m.throttled.WithLabelValues(l)
	}
	return m
}

// action counts one audited action by its result's class.
func (m *portalMetrics) action(action, result string) {
	m.actions.WithLabelValues(action, resultClass(result)).Inc()
}

// resultClass sorts an audit result into ok, refused or failed.
func resultClass(result string) string {
	switch {
	case strings.HasPrefix(result, "ok"):
		return "ok"
	case strings.HasPrefix(result, "refused"), strings.HasPrefix(result, "wrong"):
		return "refused"
	}
	return "failed"
}

func (m *portalMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// fleetCollector describes the servers as the backend lists them, at most
// fleetCacheFor old.
type fleetCollector struct {
	list  func(ctx context.Context) ([]*serverView, error)
	now   func() time.Time
	fails prometheus.Counter

	mu      sync.Mutex
	at      time.Time
	servers []*serverView
}

var (
	descServers = prometheus.NewDesc("spinbook_portal_servers",
		"Servers by state: ready (Jupyter answers), starting (running, not yet ready), stopped, failed.", []string{"state"}, nil)
	descCost = prometheus.NewDesc("spinbook_portal_server_cost_per_hour_dollars",
		"What a running server costs an hour (sizes.NAME.price_per_hour), by user and size.", []string{"user", "size"}, nil)
	descUptime = prometheus.NewDesc("spinbook_portal_server_uptime_seconds",
		"How long a running server has run, by user.", []string{"user"}, nil)
	descCostToday = prometheus.NewDesc("spinbook_portal_cost_today_dollars",
		"What the team's servers cost since midnight (the portal's time zone), as far as the portal saw them run.", nil, nil)
	descCostMonth = prometheus.NewDesc("spinbook_portal_cost_month_dollars",
		"What the team's servers cost since the first of the month, as far as the portal saw them run.", nil, nil)
)

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServers, descCost, descUptime, descCostToday, descCostMonth} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	servers, ok := c.snapshot()
	if !ok {
		return
	}
	count := map[string]float64{}
	var today, month float64
	for _, v := range servers {
		if state := stateOf(v); state != "" {
			count[state]++
		}
		if v.Running() {
			if v.CostPerHour != nil {
				ch <- prometheus.MustNewConstMetric(descCost, prometheus.GaugeValue, *v.CostPerHour, v.User, v.Size)
			}
			ch <- prometheus.MustNewConstMetric(descUptime, prometheus.GaugeValue, float64(v.UptimeSeconds), v.User)
		}
		if v.CostToday != nil {
			today += *v.CostToday
		}
		if v.CostMonth != nil {
			month += *v.CostMonth
		}
	}
	for _, s := range serverStates {
		ch <- prometheus.MustNewConstMetric(descServers, prometheus.GaugeValue, count[s], s)
	}
	ch <- prometheus.MustNewConstMetric(descCostToday, prometheus.GaugeValue, today)
	ch <- prometheus.MustNewConstMetric(descCostMonth, prometheus.GaugeValue, month)
}

// snapshot is the servers as last listed, listing them again when that is
// older than fleetCacheFor.
func (c *fleetCollector) snapshot() ([]*serverView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers != nil && c.now().Sub(c.at) < fleetCacheFor {
		return c.servers, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	servers, err := c.list(ctx)
	if err != nil {
		c.fails.Inc()
		return nil, false
	}
	if servers == nil {
		servers = []*serverView{}
	}
	c.servers, c.at = servers, c.now()
	return servers, true
}

// stateOf is a server's state label, or "" for one that is not there.
func stateOf(v *serverView) string {
	switch {
	case v.Running() && v.Ready:
		return "ready"
	case v.Running():
		return "starting"
	case v.State == "stopped", v.State == "failed":
		return v.State
	}
	return ""
}
