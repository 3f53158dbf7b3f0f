package bench

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// KubeOptions says what bench/kube/run measures.
type KubeOptions struct {
	Bin          string // the spinbook binary
	Agent        string // the agent binary (cmd/spinbook-agent), the agent image's
	Venv         string // JupyterHub + KubeSpawner (bench/kube/venv)
	CHP          string // bench/chp, with configurable-http-proxy installed
	Spawns       int    // measured warm spawns per side
	ColdSpawns   int    // measured cold spawns per side
	Simultaneous int    // users starting at once, per side
	LsServers    int    // servers listed by the ls benchmark, per side (0: skip)
	Poll         time.Duration
	BasePort     int // 3 ports from here (proxy, hub, proxy API)
	Command      string
	Log          io.Writer
	// LoadBefore is the load average before the run began, read before
	// the cluster started (whose start loads the machine itself); empty:
	// RunKube reads it.
	LoadBefore string
}

// LoadAverage is the machine's load average over the last minute.
func LoadAverage() string { return loadAverage() }

// DefaultKubeOptions is the full run, or with quick a short one that
// checks that everything works.
func DefaultKubeOptions(quick bool) KubeOptions {
	o := KubeOptions{Spawns: 10, Simultaneous: 10, LsServers: 50, Poll: 10 * time.Millisecond, BasePort: 19350, Log: os.Stderr}
	if quick {
		o.Spawns, o.Simultaneous, o.LsServers = 1, 2, 3
	}
	o.ColdSpawns = o.Spawns
	return o
}

// KubeCluster is what the benchmark needs of the test cluster
// (k8stest.Cluster, kept out of this package's imports for its unit tests).
type KubeCluster struct {
	Kubeconfig, Image, AgentImage string
	PodCIDR                       string
	// EvictImage removes Image from the node; LoadImage loads it again (the
	// stand-in for a registry pull: the test cluster reaches no registry).
	EvictImage, LoadImage func() error
	// Components are the cluster's own processes (kube-apiserver, etcd,
	// kubelet, containerd, ...) by name, or nil when unknown.
	Components func() map[string]int
}

// The two sides, in table order.
const (
	kubeSpinbookSide = iota
	kubeHubSide
	kubeSides
)

// kubeResults is everything measured.
type kubeResults struct {
	hubStart   time.Duration
	cold, warm [kubeSides][]time.Duration
	coldLoad   []time.Duration // image loads before cold spawns
	login      []time.Duration // spinbook: the login before the kernel (not counted)
	simWall    [kubeSides]time.Duration
	simCPU     [kubeSides]sideCPU
	simFail    [kubeSides]int
	simErrs    []string
	ctlIdle    int64 // hub + CHP with no server
	ctlBusy    int64 // hub + CHP with Simultaneous servers
	agentRSS   []int64
	ls         [kubeSides][]time.Duration
	lsCount    [kubeSides]int
}

type kubeRun struct {
	o   KubeOptions
	cl  KubeCluster
	sb  *kubeSpinbook
	hub *kubeHub
	r   kubeResults
}

func (b *kubeRun) logf(format string, args ...any) {
	fmt.Fprintf(b.o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// RunKube runs the Kubernetes comparison on cl and returns its report.
// Its temp dir (the hub's log and db, spinbook's config) is kept on
// failure, and its path said.
func RunKube(ctx context.Context, o KubeOptions, cl KubeCluster) (_ Report, err error) {
	dir, err := os.MkdirTemp("", "kubebench-")
	if err != nil {
		return Report{}, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs kept in %s)", err, dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	gw, err := podGateway(cl.PodCIDR)
	if err != nil {
		return Report{}, err
	}
	b := &kubeRun{o: o, cl: cl}
	b.sb, err = newKubeSpinbook(ctx, o.Bin, dir, cl.Image, cl.Kubeconfig, cl.AgentImage, o.Poll)
	if err != nil {
		return Report{}, err
	}
	b.hub = &kubeHub{
		hubProc: newHubProc(dir, o.BasePort),
		venv:    o.Venv, chp: o.CHP, ns: "default", image: cl.Image, kubeconfig: cl.Kubeconfig,
		hubConnectIP: gw, poll: o.Poll,
	}
	rep := Report{Command: o.Command, Date: time.Now()}
	loadBefore := o.LoadBefore
	if loadBefore == "" {
		loadBefore = loadAverage()
	}
	rep.Versions = kubeVersions(ctx, o, cl) // the tree the binary was built from, before any later edit
	if b.r.hubStart, err = b.hub.start(ctx); err != nil {
		return Report{}, err
	}
	defer b.hub.stop()
	b.logf("jupyterhub up in %s", b.r.hubStart.Round(time.Millisecond))
	if err := b.spawnBench(ctx); err != nil {
		return Report{}, err
	}
	if err := b.simultaneousBench(ctx); err != nil {
		return Report{}, err
	}
	if o.LsServers > 0 {
		if err := b.lsBench(ctx); err != nil {
			return Report{}, err
		}
	}
	rep.Machine = append(machine(), "load average "+loadBefore+" before, "+loadAverage()+" after")
	rep.Settings = fmt.Sprintf("%d cold and %d warm spawns per side after a warm-up, interleaved; %d users at once per side; `ls` with %d servers per side (median of 5); readiness polled every %s",
		o.ColdSpawns, o.Spawns, o.Simultaneous, o.LsServers, o.Poll)
	rep.Rows = b.r.rows(o)
	rep.Notes = b.r.notes(loadBefore)
	return rep, nil
}

// podGateway is the node's address on its pod network (the first of its
// pod CIDR, the CNI bridge's): where pods reach a hub on the host.
func podGateway(cidr string) (string, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil {
		return "", fmt.Errorf("the node's pod CIDR %q: %w", cidr, err)
	}
	return p.Masked().Addr().Next().String(), nil
}

// kernelAnswers starts a kernel on j and waits until it answers `1+1`.
func kernelAnswers(ctx context.Context, j jupyterAPI) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	id, err := j.startKernel(ctx)
	if err != nil {
		return err
	}
	conn, err := j.dialKernel(ctx, id)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	return execute(ctx, conn, randomHex(16), "1+1")
}

// spinbookUp brings user's server up and waits for a kernel's answer; it
// returns the time without the login (as bench/run: the password check is
// the person's, not the server's) and the login's.
func (b *kubeRun) spinbookUp(ctx context.Context, user string) (spawn, login time.Duration, err error) {
	s := b.sb.user(user)
	t0 := time.Now()
	out, err := s.run(ctx, "up", "--json")
	if err != nil {
		return 0, 0, err
	}
	returned := time.Since(t0)
	if err := s.setURL(out); err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	if err := s.login(ctx); err != nil {
		return 0, 0, err
	}
	login = time.Since(t1)
	t2 := time.Now()
	if err := kernelAnswers(ctx, s.api()); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", user, err)
	}
	return returned + time.Since(t2), login, nil
}

func (b *kubeRun) spinbookDown(ctx context.Context, user string) error {
	_, err := b.sb.user(user).run(ctx, "down", "--force")
	return err
}

// hubUp spawns user's server through the hub and waits for a kernel's answer.
func (b *kubeRun) hubUp(ctx context.Context, user string) (time.Duration, error) {
	t0 := time.Now()
	if err := b.hub.spawn(ctx, user); err != nil {
		return 0, err
	}
	if err := kernelAnswers(ctx, b.hub.api(user)); err != nil {
		return 0, fmt.Errorf("%s: %w", user, err)
	}
	return time.Since(t0), nil
}

// spawnBench: cold spawns (the image evicted from the node and loaded
// again first, not counted) and warm ones, the sides alternating, the same
// user each time on each side (its workspace claim kept between).
func (b *kubeRun) spawnBench(ctx context.Context) error {
	const sbUser, hubUser = "kb-spawn", "kb-spawn"
	if err := b.hub.addUsers(ctx, []string{hubUser}); err != nil {
		return err
	}
	one := func(side int, cold bool) error {
		var d time.Duration
		var err error
		if cold {
			if err := b.cl.EvictImage(); err != nil {
				return err
			}
			t0 := time.Now()
			if err := b.cl.LoadImage(); err != nil {
				return err
			}
			b.r.coldLoad = append(b.r.coldLoad, time.Since(t0))
		}
		if side == kubeSpinbookSide {
			var login time.Duration
			d, login, err = b.spinbookUp(ctx, sbUser)
			if err == nil {
				b.r.login = append(b.r.login, login)
				err = b.spinbookDown(ctx, sbUser)
			}
		} else {
			d, err = b.hubUp(ctx, hubUser)
			if err == nil {
				err = b.hub.stopServer(ctx, hubUser)
			}
		}
		if err != nil {
			return err
		}
		if cold {
			b.r.cold[side] = append(b.r.cold[side], d)
		} else {
			b.r.warm[side] = append(b.r.warm[side], d)
		}
		b.logf("spawn %s %s: %s", map[bool]string{true: "cold", false: "warm"}[cold], []string{"spinbook", "hub"}[side], d.Round(time.Millisecond))
		return nil
	}
	// The first of each side makes its workspace claim: a warm-up, not counted.
	if err := one(kubeSpinbookSide, false); err != nil {
		return err
	}
	if err := one(kubeHubSide, false); err != nil {
		return err
	}
	b.r.warm = [kubeSides][]time.Duration{}
	b.r.login = nil
	for _, cold := range []bool{true, false} {
		n := b.o.Spawns
		if cold {
			n = b.o.ColdSpawns
		}
		for i := range n {
			for _, side := range order2(i) {
				if err := one(side, cold); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// order2 alternates which side goes first.
func order2(i int) []int {
	if i%2 == 0 {
		return []int{kubeSpinbookSide, kubeHubSide}
	}
	return []int{kubeHubSide, kubeSpinbookSide}
}

// users names n users of a phase.
func users(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%02d", prefix, i))
	}
	return out
}

// all starts the servers of names at once on side and returns the wall
// time until every kernel answered and the failures.
func (b *kubeRun) all(ctx context.Context, side int, names []string) (time.Duration, []error) {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	t0 := time.Now()
	for i, u := range names {
		wg.Go(func() {
			if side == kubeSpinbookSide {
				_, _, errs[i] = b.spinbookUp(ctx, u)
			} else {
				_, errs[i] = b.hubUp(ctx, u)
			}
		})
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	return time.Since(t0), failed
}

// simultaneousBench: Simultaneous users start at once on each side (one
// side after the other); with them running, the memory of each side's
// parts is measured.
func (b *kubeRun) simultaneousBench(ctx context.Context) error {
	names := users("kb-", 0, b.o.Simultaneous)
	if err := b.hub.addUsers(ctx, names); err != nil {
		return err
	}
	idle, err := b.hub.rss()
	if err != nil {
		return err
	}
	b.r.ctlIdle = idle
	for _, side := range []int{kubeSpinbookSide, kubeHubSide} {
		var pids []int // the side's processes on this host; spinbook's commands are children that end
		if side == kubeHubSide {
			pids = []int{b.hub.pid(), b.hub.descendant("configurable-http-proxy")}
		}
		var components map[string]int
		if b.cl.Components != nil {
			components = b.cl.Components()
		}
		cpu, cluster := sampleCPU(pids...), clusterCPU(components)
		wall, failed := b.all(ctx, side, names)
		b.r.simCPU[side] = cpu.since(pids...)
		b.r.simCPU[side].components, b.r.simCPU[side].cluster = clusterSince(components, cluster)
		b.r.simWall[side], b.r.simFail[side] = wall, len(failed)
		for _, err := range failed {
			b.r.simErrs = append(b.r.simErrs, err.Error())
		}
		b.logf("%d at once, %s: %s, %d failed; processor time: the side's %s, the machine's %s", len(names), []string{"spinbook", "hub"}[side],
			wall.Round(time.Millisecond), len(failed), b.r.simCPU[side].side.Round(time.Millisecond), b.r.simCPU[side].machine.Round(time.Millisecond))
		b.logf("  the cluster's processes meanwhile: %s (%s)", formatCPU(b.r.simCPU[side].cluster), topCPU(b.r.simCPU[side].components, 10))
	}
	busy, err := b.hub.rss()
	if err != nil {
		return err
	}
	b.r.ctlBusy = busy
	pids, err := agentPIDs()
	if err != nil {
		return err
	}
	for _, p := range pids {
		if n, err := rssBytes(p); err == nil {
			b.r.agentRSS = append(b.r.agentRSS, n)
		}
	}
	return nil
}

// lsBench brings one side at a time to LsServers servers (adding to the
// running ones, Simultaneous at a time), times listing them 5 times, and
// stops the added ones again: the two sides' 2×LsServers Jupyters never
// share the node at once.
func (b *kubeRun) lsBench(ctx context.Context) error {
	extra := users("kb-", b.o.Simultaneous, b.o.LsServers)
	if err := b.hub.addUsers(ctx, extra); err != nil {
		return err
	}
	batch := max(1, b.o.Simultaneous)
	for side := range kubeSides {
		for i := 0; i < len(extra); i += batch {
			if _, failed := b.all(ctx, side, extra[i:min(i+batch, len(extra))]); len(failed) > 0 {
				return fmt.Errorf("bring up servers for ls: %w", failed[0])
			}
		}
		for range 5 {
			t0 := time.Now()
			var n int
			var err error
			if side == kubeSpinbookSide {
				n, err = b.sb.ls(ctx)
			} else {
				n, err = b.hub.list(ctx)
			}
			if err != nil {
				return err
			}
			b.r.ls[side] = append(b.r.ls[side], time.Since(t0))
			b.r.lsCount[side] = n
		}
		if err := b.stopAll(ctx, side, extra); err != nil {
			return err
		}
	}
	b.logf("ls: spinbook %s (%d), hub %s (%d)", MedianDuration(b.r.ls[0]), b.r.lsCount[0], MedianDuration(b.r.ls[1]), b.r.lsCount[1])
	return nil
}

// stopAll stops the servers of names on side, Simultaneous at a time.
func (b *kubeRun) stopAll(ctx context.Context, side int, names []string) error {
	batch := max(1, b.o.Simultaneous)
	for i := 0; i < len(names); i += batch {
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for j := i; j < min(i+batch, len(names)); j++ {
			wg.Go(func() {
				if side == kubeSpinbookSide {
					errs[j] = b.spinbookDown(ctx, names[j])
				} else {
					errs[j] = b.hub.stopServer(ctx, names[j])
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return fmt.Errorf("stop the servers ls listed: %w", err)
			}
		}
	}
	return nil
}

// kubeVersions names what ran.
func kubeVersions(ctx context.Context, o KubeOptions, cl KubeCluster) []string {
	first := firstLine(ctx, nil)
	out := []string{spinbookVersion(ctx, o.Bin), "configurable-http-proxy " + first(filepath.Join(o.CHP, "node_modules", ".bin", "configurable-http-proxy"), "--version"),
		"node " + first("node", "--version"), runtime.Version()}
	pkgs := map[string]string{}
	for _, p := range []string{"jupyterhub", "jupyterhub_kubespawner"} {
		matches, _ := filepath.Glob(filepath.Join(o.Venv, "lib", "python3*", "site-packages", p+"-*.dist-info"))
		if len(matches) > 0 {
			pkgs[p] = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(matches[0]), p+"-"), ".dist-info")
		}
	}
	return append(out, "JupyterHub "+pkgs["jupyterhub"], "KubeSpawner "+pkgs["jupyterhub_kubespawner"],
		"image "+cl.Image+" (JupyterLab 4 of scripts/jupyter/lock.txt)", "agent image "+cl.AgentImage+agentSize(o.Agent),
		"Kubernetes v1.34.4 (scripts/k8s-test-cluster: one node, containerd 1.6)")
}

// agentSize says what the agent image holds: the agent binary and its size.
func agentSize(bin string) string {
	st, err := os.Stat(bin)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" (%s, %.1f MB)", filepath.Base(bin), float64(st.Size())/1e6)
}
