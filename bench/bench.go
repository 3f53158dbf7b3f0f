// Package bench measures spinbook against the peer a team would otherwise
// pick, JupyterHub with configurable-http-proxy, and against a bare Jupyter
// with nothing in front, side by side on this machine: spawn and stop
// times, HTTP throughput and latency, kernel websocket round trips, health
// checks while kernels saturate every core, and memory. Runs of the three
// sides are interleaved, in a rotating order, so that drift of a shared
// machine falls on all of them alike. Everything runs on loopback and every
// loop is bounded in count and time. bench/run is the command.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// The three sides, in table order.
const (
	sideSpinbook = iota
	sideJupyter
	sideHub
	sides
)

var sideNames = [sides]string{"spinbook", "Jupyter", "JupyterHub"}

// The benchmarks, for Options.Only.
var Benchmarks = []string{"spawn", "http", "websocket", "load", "memory"}

// Options says what to run and for how long.
type Options struct {
	Bin          string        // the spinbook binary
	Stack        Stack         // the Jupyter every side runs, and the peer
	SpawnRounds  int           // measured spawn/stop cycles per side (after one warm-up)
	Rounds       int           // interleaved rounds of the HTTP, websocket and load benchmarks
	Wrk          WrkOptions    // per wrk run
	RoundTrips   int           // measured `1+1` executions per websocket round
	Kernels      int           // spinning kernels for the load benchmark
	LoadDuration time.Duration // probing per load round
	Poll         time.Duration // how often readiness is polled
	BasePort     int           // 40 ports from here are used
	Only         []string      // benchmarks to run; empty: all
	Command      string        // how the run was invoked, for the report
	Log          io.Writer     // progress
}

// DefaultOptions returns the full run's settings (a few minutes), or with
// quick a short run to check that everything works.
func DefaultOptions(quick bool) Options {
	o := Options{
		Stack:        DebianStack(),
		SpawnRounds:  5,
		Rounds:       3,
		Wrk:          WrkOptions{Duration: 5 * time.Second, Threads: 1, Connections: 4},
		RoundTrips:   200,
		Kernels:      max(2, runtime.NumCPU()),
		LoadDuration: 10 * time.Second,
		Poll:         10 * time.Millisecond,
		BasePort:     19300,
		Log:          os.Stderr,
	}
	if quick {
		o.SpawnRounds, o.Rounds = 1, 1
		o.Wrk.Duration = 2 * time.Second
		o.RoundTrips = 50
		o.LoadDuration = 3 * time.Second
	}
	return o
}

// results is everything measured, per side.
type results struct {
	hubStart   time.Duration
	upReturned []time.Duration // spinbook: until `up` returned
	login      []time.Duration // spinbook: the first login
	spawn      [sides][]time.Duration
	stop       [sides][]time.Duration
	endpoints  []string                       // what the HTTP benchmark loads
	http       map[string]*[sides][]WrkResult // by endpoint
	rtt        [sides][]time.Duration
	load       map[string][]time.Duration // by probe name
	loadFail   map[string]int
	rss        map[string]int64 // by process role
}

// run is one benchmark run's world: the three sides in a temp dir.
type run struct {
	o    Options
	sb   *spinbook
	bare *bareJupyter
	hub  *hub
	sbUp bool
	r    results
}

func (b *run) logf(format string, args ...any) {
	fmt.Fprintf(b.o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Run runs the benchmarks and returns the report. On failure it keeps its
// temp dir, with every side's log, and says where.
func Run(ctx context.Context, o Options) (_ Report, err error) {
	for _, name := range o.Only {
		if !slices.Contains(Benchmarks, name) {
			return Report{}, fmt.Errorf("unknown benchmark %q (valid: %v)", name, Benchmarks)
		}
	}
	dir, err := os.MkdirTemp("", "spinbench-")
	if err != nil {
		return Report{}, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n(logs kept in %s)", err, dir)
			return
		}
		os.RemoveAll(dir)
	}()
	// Run as root, spinbook serves each person as an OS account of their
	// own, which must pass through to its state dir (README, "Several
	// people on one machine"): others may pass, not list.
	if err := os.Chmod(dir, 0o711); err != nil {
		return Report{}, err
	}
	for _, sub := range []string{"spinbook", "jupyter", "hub"} {
		mode := os.FileMode(0o700)
		if sub == "spinbook" {
			mode = 0o711
		}
		if err := os.Mkdir(filepath.Join(dir, sub), mode); err != nil {
			return Report{}, err
		}
		if err := os.Chmod(filepath.Join(dir, sub), mode); err != nil { // past the umask
			return Report{}, err
		}
	}
	b := &run{o: o}
	b.r.http = map[string]*[sides][]WrkResult{}
	b.r.load, b.r.loadFail, b.r.rss = map[string][]time.Duration{}, map[string]int{}, map[string]int64{}
	ports := fmt.Sprintf("%d-%d", o.BasePort+20, o.BasePort+39)
	if b.sb, err = newSpinbook(ctx, o.Stack, o.Bin, filepath.Join(dir, "spinbook"), ports, o.Poll); err != nil {
		return Report{}, err
	}
	b.bare = newBareJupyter(o.Stack, filepath.Join(dir, "jupyter"), o.BasePort+10, o.Poll)
	b.hub = newHub(o.Stack, filepath.Join(dir, "hub"), o.BasePort, o.Poll)
	b.r.endpoints = httpEndpoints(o.Stack)
	defer b.teardown()

	loadBefore := loadAverage()
	b.logf("starting JupyterHub")
	if b.r.hubStart, err = b.hub.start(ctx); err != nil {
		return Report{}, err
	}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"spawn", b.spawnBench},
		{"http", b.httpBench},
		{"websocket", b.websocketBench},
		{"memory", b.memoryBench},
		{"load", b.loadBench},
	}
	for _, s := range steps {
		if len(o.Only) > 0 && !slices.Contains(o.Only, s.name) {
			continue
		}
		if s.name != "spawn" {
			if err := b.allUp(ctx); err != nil {
				return Report{}, err
			}
		}
		b.logf("benchmark %s", s.name)
		if err := s.f(ctx); err != nil {
			return Report{}, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	rep := Report{
		Date:     time.Now(),
		Command:  o.Command,
		Machine:  append(machine(), "load average "+loadBefore+" before, "+loadAverage()+" after (with the load benchmark's kernels)"),
		Stack:    o.Stack,
		Versions: versions(ctx, o.Bin, o.Stack),
		Settings: fmt.Sprintf("%d spawn rounds after a warm-up; %d interleaved rounds of wrk -t%d -c%d -d%s, %d kernel round trips, %s probing under %d spinning kernels; readiness polled every %s",
			o.SpawnRounds, o.Rounds, o.Wrk.Threads, o.Wrk.Connections, o.Wrk.Duration, o.RoundTrips, o.LoadDuration, o.Kernels, o.Poll),
		Rows:  b.r.rows(),
		Notes: b.r.notes(),
	}
	// The load average after includes the load benchmark's own spinning
	// kernels; the one before tells whether others were busy.
	if busy := parseLoad(loadBefore); busy > float64(runtime.NumCPU())/2 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("The machine was busy with other work (load average %.1f on %d cores before the run): "+
			"ratios of such a run swing from run to run; rerun on a quiet machine before trusting them.", busy, runtime.NumCPU()))
	}
	return rep, nil
}

// allUp brings every side's long-lived server up.
func (b *run) allUp(ctx context.Context) error {
	if !b.sbUp {
		if _, err := b.sb.up(ctx); err != nil {
			return err
		}
		b.sbUp = true
	}
	if b.bare.cmd == nil {
		if _, err := b.bare.start(ctx); err != nil {
			return err
		}
	}
	if _, _, server := b.hub.pids(); server == 0 {
		if _, err := b.hub.spawn(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (b *run) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.sb.down(ctx); err != nil {
		b.logf("teardown: %v", err)
	}
	b.bare.stop()
	b.hub.stop()
}

// order returns the sides in round r's order: rotated, so each side takes
// each place as often as the others.
func order(r int) []int {
	out := make([]int, sides)
	for i := range out {
		out[i] = (r + i) % sides
	}
	return out
}

// spawnBench starts and stops each side's server SpawnRounds times after
// one unmeasured warm-up round (which fills caches, such as spinbook's
// probe of the Jupyter command).
func (b *run) spawnBench(ctx context.Context) error {
	if b.sbUp {
		b.sb.down(ctx)
		b.sbUp = false
	}
	b.bare.stop()
	if _, _, server := b.hub.pids(); server != 0 {
		b.hub.stopServer(ctx)
	}
	for round := -1; round < b.o.SpawnRounds; round++ {
		for _, side := range order(round + 1) {
			var up, down time.Duration
			var err error
			switch side {
			case sideSpinbook:
				var u upTimes
				if u, err = b.sb.up(ctx); err == nil {
					up = u.spawn()
					down, err = b.sb.down(ctx)
					if round >= 0 {
						b.r.upReturned = append(b.r.upReturned, u.returned)
						b.r.login = append(b.r.login, u.login)
					}
				}
			case sideJupyter:
				if up, err = b.bare.start(ctx); err == nil {
					down, err = b.bare.stop()
				}
			case sideHub:
				if up, err = b.hub.spawn(ctx); err == nil {
					down, err = b.hub.stopServer(ctx)
				}
			}
			if err != nil {
				return err
			}
			b.logf("spawn round %d %s: up %s, down %s", round, sideNames[side], up, down)
			if round >= 0 {
				b.r.spawn[side] = append(b.r.spawn[side], up)
				b.r.stop[side] = append(b.r.stop[side], down)
			}
		}
	}
	return nil
}

// apis returns how each side's Jupyter is reached: through the front door,
// directly, through the proxy.
func (b *run) apis() [sides]jupyterAPI {
	return [sides]jupyterAPI{b.sb.api(), b.bare.api(), b.hub.api()}
}

// httpEndpoints are the paths wrk loads: a cheap authenticated API call
// and a small static file of the stack's Jupyter.
func httpEndpoints(s Stack) []string { return []string{"api/status", s.StaticFile} }

func (b *run) httpBench(ctx context.Context) error {
	apis := b.apis()
	for round := 0; round < b.o.Rounds; round++ {
		for _, side := range order(round) {
			for _, ep := range b.r.endpoints {
				res, err := runWrk(ctx, b.o.Wrk, apis[side].base+ep, headerLines(apis[side].header))
				if err != nil {
					return err
				}
				b.logf("http round %d %s %s: %.0f req/s, p50 %s, p99 %s, %d errors", round, sideNames[side], ep, res.ReqPerSec, res.P50, res.P99, res.Errors)
				if b.r.http[ep] == nil {
					b.r.http[ep] = &[sides][]WrkResult{}
				}
				b.r.http[ep][side] = append(b.r.http[ep][side], res)
			}
		}
	}
	return nil
}

func (b *run) websocketBench(ctx context.Context) error {
	apis := b.apis()
	for round := 0; round < b.o.Rounds; round++ {
		for _, side := range order(round) {
			ds, err := roundTrips(ctx, apis[side], 5, b.o.RoundTrips)
			if err != nil {
				return fmt.Errorf("%s: %w", sideNames[side], err)
			}
			s := Summarize(ds, 0)
			b.logf("websocket round %d %s: median %s, p99 %s", round, sideNames[side], s.Median, s.P99)
			b.r.rtt[side] = append(b.r.rtt[side], ds...)
		}
	}
	return nil
}

// Probe names of the load benchmark.
const (
	probeHealthz      = "spinbook /healthz"
	probeFrontStatus  = "spinbook /api/status"
	probeDirectStatus = "Jupyter /api/status"
	probeHubHealth    = "JupyterHub /hub/health"
	probeHubStatus    = "JupyterHub /api/status"
)

// loadBench probes each side while its own kernels spin on every core.
func (b *run) loadBench(ctx context.Context) error {
	apis := b.apis()
	probes := [sides][]probe{
		sideSpinbook: {
			{probeHealthz, b.sb.healthURL, nil},
			{probeFrontStatus, apis[sideSpinbook].base + "api/status", apis[sideSpinbook].header},
		},
		sideJupyter: {{probeDirectStatus, apis[sideJupyter].base + "api/status", apis[sideJupyter].header}},
		sideHub: {
			{probeHubHealth, b.hub.url() + "hub/health", nil},
			{probeHubStatus, apis[sideHub].base + "api/status", apis[sideHub].header},
		},
	}
	for round := 0; round < b.o.Rounds; round++ {
		for _, side := range order(round) {
			samples, failures, err := probeUnderLoad(ctx, apis[side], b.o.Kernels, probes[side], time.Second, b.o.LoadDuration, 50*time.Millisecond)
			if err != nil {
				return fmt.Errorf("%s: %w", sideNames[side], err)
			}
			for name, ds := range samples {
				b.r.load[name] = append(b.r.load[name], ds...)
				s := Summarize(ds, failures[name])
				b.logf("load round %d %s: p50 %s, p99 %s, max %s, %d failures", round, name, s.Median, s.P99, s.Max, s.Failures)
			}
			for name, n := range failures {
				b.r.loadFail[name] += n
			}
		}
	}
	return nil
}

// Process roles of the memory benchmark.
const (
	rssAgent      = "agent"
	rssSBJupyter  = "spinbook's Jupyter"
	rssBare       = "bare Jupyter"
	rssHub        = "hub"
	rssProxy      = "proxy"
	rssSingleUser = "single-user server"
	anonAgent     = "agent, anonymous"
)

// memoryBench reads the resident set of every process, after the traffic
// of the other benchmarks and with no kernel running.
func (b *run) memoryBench(ctx context.Context) error {
	agent, jup, err := b.sb.pids()
	if err != nil {
		return err
	}
	hubPID, proxyPID, serverPID := b.hub.pids()
	for role, pid := range map[string]int{
		rssAgent: agent, rssSBJupyter: jup, rssBare: b.bare.pid(),
		rssHub: hubPID, rssProxy: proxyPID, rssSingleUser: serverPID,
	} {
		if pid == 0 {
			return fmt.Errorf("no process for %s", role)
		}
		n, err := rssBytes(pid)
		if err != nil {
			return fmt.Errorf("%s (pid %d): %w", role, pid, err)
		}
		b.r.rss[role] = n
		b.logf("memory %s (pid %d): %s", role, pid, FormatMiB(n))
	}
	n, err := anonBytes(agent)
	if err != nil {
		return fmt.Errorf("agent (pid %d): %w", agent, err)
	}
	b.r.rss[anonAgent] = n
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rows turns the results into the table.
func (r *results) rows() []Row {
	var rows []Row
	durRow := func(bench, metric string, vals [sides]time.Duration) Row {
		row := Row{Benchmark: bench, Metric: metric}
		cells := []*string{&row.Spinbook, &row.Jupyter, &row.Hub}
		for i, v := range vals {
			if v > 0 {
				*cells[i] = FormatDuration(v)
			}
		}
		row.VsJupyter = Ratio(ms(vals[sideSpinbook]), ms(vals[sideJupyter]))
		row.VsHub = Ratio(ms(vals[sideSpinbook]), ms(vals[sideHub]))
		return row
	}
	if len(r.spawn[sideSpinbook]) > 0 {
		var med, p99, stopMed, stopP99 [sides]time.Duration
		for i := range sides {
			s, st := Summarize(r.spawn[i], 0), Summarize(r.stop[i], 0)
			med[i], p99[i], stopMed[i], stopP99[i] = s.Median, s.P99, st.Median, st.P99
		}
		row := durRow("spawn", "start until Jupyter answers through the front door / directly / through CHP, median", med)
		row.Goal = GoalAtMost("Jupyter", ms(med[sideSpinbook])/ms(med[sideJupyter]), 1.15, "×") + "; " +
			GoalAtMost("Hub", ms(med[sideSpinbook])/ms(med[sideHub]), 0.6, "×")
		rows = append(rows, row, durRow("spawn", "p99 (of "+strconv.Itoa(len(r.spawn[0]))+")", p99))
		up, login := Summarize(r.upReturned, 0), Summarize(r.login, 0)
		rows = append(rows,
			durRow("spawn", "spinbook: of which until `up` returned, median", [sides]time.Duration{up.Median}),
			durRow("spawn", "spinbook: the first login (argon2id; not in the spawn time), median", [sides]time.Duration{login.Median}))
		rows = append(rows, durRow("stop", "`spinbook down` / SIGTERM until exit / DELETE until gone, median", stopMed))
		rows = append(rows, durRow("stop", "p99", stopP99))
	}
	for _, ep := range r.endpoints {
		res := r.http[ep]
		if res == nil {
			continue
		}
		var rate [sides]float64
		var p50, p99 [sides]time.Duration
		for i := range sides {
			var rates []float64
			var a, b []time.Duration
			for _, w := range res[i] {
				rates = append(rates, w.ReqPerSec)
				a, b = append(a, w.P50), append(b, w.P99)
			}
			rate[i], p50[i], p99[i] = MedianFloat(rates), MedianDuration(a), MedianDuration(b)
		}
		name := "HTTP GET /" + ep
		row := Row{Benchmark: name, Metric: "req/s (median of rounds)",
			Spinbook: FormatRate(rate[0]), Jupyter: FormatRate(rate[1]), Hub: FormatRate(rate[2]),
			VsJupyter: Ratio(rate[0], rate[1]), VsHub: Ratio(rate[0], rate[2])}
		if ep == "api/status" {
			row.Goal = GoalAtLeast("Jupyter", rate[0]/rate[1], 0.9, "×")
		} else {
			row.Goal = GoalAtLeast("Hub", rate[0]/rate[2], 10, "×")
		}
		rows = append(rows, row, durRow(name, "latency p50", p50), durRow(name, "latency p99", p99))
	}
	if len(r.rtt[sideSpinbook]) > 0 {
		var med, p99 [sides]time.Duration
		for i := range sides {
			s := Summarize(r.rtt[i], 0)
			med[i], p99[i] = s.Median, s.P99
		}
		row := durRow("kernel round trip", "`1+1` over the channels websocket, median", med)
		row.Goal = GoalAtMost("Jupyter", ms(med[0])/ms(med[1]), 0.3, "×")
		rows = append(rows, row, durRow("kernel round trip", "p99 (of "+strconv.Itoa(len(r.rtt[0]))+")", p99))
	}
	if len(r.load) > 0 {
		sum := func(name string) Summary { return Summarize(r.load[name], r.loadFail[name]) }
		hz, hh := sum(probeHealthz), sum(probeHubHealth)
		for _, m := range []struct {
			metric string
			f      func(Summary) time.Duration
		}{{"p50", func(s Summary) time.Duration { return s.Median }}, {"p99", func(s Summary) time.Duration { return s.P99 }}, {"max", func(s Summary) time.Duration { return s.Max }}} {
			row := durRow("health under load", "/healthz vs /hub/health, "+m.metric, [sides]time.Duration{m.f(hz), 0, m.f(hh)})
			if m.metric == "p99" {
				row.Goal = goal("≤ 5 ms, no failures", hz.P99 > 0 && hz.P99 <= 5*time.Millisecond && hz.Failures == 0)
			}
			rows = append(rows, row)
		}
		rows = append(rows, Row{Benchmark: "health under load", Metric: "failures (of probes)",
			Spinbook: fmt.Sprintf("%d of %d", hz.Failures, hz.N+hz.Failures), Hub: fmt.Sprintf("%d of %d", hh.Failures, hh.N+hh.Failures)})
		fs, ds, hs := sum(probeFrontStatus), sum(probeDirectStatus), sum(probeHubStatus)
		rows = append(rows,
			durRow("health under load", "/api/status (front door / direct / CHP), p50", [sides]time.Duration{fs.Median, ds.Median, hs.Median}),
			durRow("health under load", "/api/status, p99", [sides]time.Duration{fs.P99, ds.P99, hs.P99}),
			Row{Benchmark: "health under load", Metric: "/api/status failures",
				Spinbook: strconv.Itoa(fs.Failures), Jupyter: strconv.Itoa(ds.Failures), Hub: strconv.Itoa(hs.Failures)})
	}
	if len(r.rss) > 0 {
		mib := func(n int64) float64 { return float64(n) / (1 << 20) }
		fixed := r.rss[rssHub] + r.rss[rssProxy]
		rows = append(rows,
			Row{Benchmark: "memory (RSS)", Metric: "front end: agent / – / hub + CHP",
				Spinbook: FormatMiB(r.rss[rssAgent]), Hub: FormatMiB(fixed), VsHub: Ratio(mib(r.rss[rssAgent]), mib(fixed)),
				Goal: GoalAtMost("agent", mib(r.rss[rssAgent]), 25, " MiB")},
			Row{Benchmark: "memory (RSS)", Metric: "agent's own (RssAnon; the rest are pages of the executable, shared by every agent on a host)",
				Spinbook: FormatMiB(r.rss[anonAgent])},
			Row{Benchmark: "memory (RSS)", Metric: "one server in all: agent + Jupyter / Jupyter / hub + CHP + single-user",
				Spinbook: FormatMiB(r.rss[rssAgent] + r.rss[rssSBJupyter]), Jupyter: FormatMiB(r.rss[rssBare]),
				Hub:       FormatMiB(fixed + r.rss[rssSingleUser]),
				VsJupyter: Ratio(mib(r.rss[rssAgent]+r.rss[rssSBJupyter]), mib(r.rss[rssBare])),
				VsHub:     Ratio(mib(r.rss[rssAgent]+r.rss[rssSBJupyter]), mib(fixed+r.rss[rssSingleUser]))},
			Row{Benchmark: "memory (RSS)", Metric: "each further server: agent + Jupyter / Jupyter / single-user",
				Spinbook: FormatMiB(r.rss[rssAgent] + r.rss[rssSBJupyter]), Jupyter: FormatMiB(r.rss[rssBare]),
				Hub:   FormatMiB(r.rss[rssSingleUser]),
				VsHub: Ratio(mib(r.rss[rssAgent]+r.rss[rssSBJupyter]), mib(r.rss[rssSingleUser]))})
	}
	return rows
}

func (r *results) notes() []string {
	var n []string
	if r.hubStart > 0 {
		n = append(n, "JupyterHub itself took "+FormatDuration(r.hubStart)+" to start (not counted in any row).")
	}
	return n
}
