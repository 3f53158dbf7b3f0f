// Command kubebench compares spinbook's kubernetes backend with JupyterHub
// + KubeSpawner + configurable-http-proxy on the project's test cluster;
// bench/kube/run installs what it needs and runs it. See
// docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spinbook/spinbook/bench"
	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
)

const heading = "## Kubernetes: spinbook against JupyterHub + KubeSpawner"

func main() {
	quick := flag.Bool("quick", false, "a short run to check the harness; not written to -doc")
	o := bench.DefaultKubeOptions(false)
	q := bench.DefaultKubeOptions(true)
	flag.StringVar(&o.Bin, "bin", "bin/spinbook", "the spinbook binary")
	flag.StringVar(&o.Agent, "agent", "bin/spinbook-agent", "the agent binary (cmd/spinbook-agent) the agent image is made of")
	flag.StringVar(&o.Venv, "venv", "", "JupyterHub + KubeSpawner's venv (bench/kube/venv install prints it)")
	flag.StringVar(&o.CHP, "chp", "bench/chp", "where configurable-http-proxy is installed (npm ci)")
	doc := flag.String("doc", "docs/benchmarks.md", "where a full run writes its table (between its markers); empty: print only")
	spawns := flag.Int("spawns", 0, fmt.Sprintf("measured warm spawns per side (default %d, quick %d)", o.Spawns, q.Spawns))
	cold := flag.Int("cold", -1, "measured cold spawns per side (default: as -spawns)")
	sim := flag.Int("simultaneous", 0, fmt.Sprintf("users starting at once per side (default %d, quick %d)", o.Simultaneous, q.Simultaneous))
	ls := flag.Int("ls", -1, fmt.Sprintf("servers per side for the ls benchmark, 0 to skip (default %d, quick %d)", o.LsServers, q.LsServers))
	command := flag.String("command", "", "how this run was invoked, for the report (bench/kube/run sets it)")
	flag.Parse()

	if *quick {
		o.Spawns, o.Simultaneous, o.LsServers = q.Spawns, q.Simultaneous, q.LsServers
	}
	if *spawns > 0 {
		o.Spawns = *spawns
	}
	o.ColdSpawns = o.Spawns
	if *cold >= 0 {
		o.ColdSpawns = *cold
	}
	if *sim > 0 {
		o.Simultaneous = *sim
	}
	if *ls >= 0 {
		o.LsServers = *ls
	}
	if o.LsServers > 0 && o.LsServers < o.Simultaneous {
		o.LsServers = o.Simultaneous
	}
	o.Command = *command
	if o.Command == "" {
		o.Command = strings.Join(os.Args, " ")
	}
	for _, p := range []*string{&o.Venv, &o.CHP} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "Error:", err)
				os.Exit(2)
			}
			*p = abs
		}
	}
	if o.Venv == "" {
		fmt.Fprintln(os.Stderr, "Error: -venv is required (bench/kube/run passes it)")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, *quick, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o bench.KubeOptions, quick bool, doc string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the test cluster needs root (scripts/k8s-test-cluster): run bench/kube/run as root or with sudo")
	}
	// Every user of each side keeps a workspace claim, and the test cluster
	// binds claims to premade volumes only.
	if os.Getenv("K8S_PV_COUNT") == "" {
		os.Setenv("K8S_PV_COUNT", fmt.Sprint(2*max(o.LsServers, o.Simultaneous)+10))
	}
	o.LoadBefore = bench.LoadAverage() // before the cluster's own start loads the machine
	fmt.Fprintln(os.Stderr, "starting the test cluster (scripts/k8s-test-cluster; waits for another user of it)")
	defer k8stest.Stop() // also after a panic, or a half-started cluster
	cl, err := k8stest.Start(o.Agent)
	if err != nil {
		return fmt.Errorf("test cluster: %w", err)
	}
	cidr, err := cl.Kubectl("get", "node", "localhost", "-o", "jsonpath={.spec.podCIDR}")
	if err != nil {
		return fmt.Errorf("kubectl get node: %w: %s", err, cidr)
	}
	rep, err := bench.RunKube(ctx, o, bench.KubeCluster{
		Kubeconfig: cl.Kubeconfig, Image: cl.LabImage, AgentImage: cl.AgentImage, PodCIDR: cidr,
		EvictImage: func() error { return cl.EvictImage(cl.LabImage) },
		LoadImage:  func() error { return cl.LoadImage(cl.LabImage) },
		Components: func() map[string]int { return components(cl.Dir) },
	})
	if err != nil {
		return err
	}
	section := bench.RenderKube(rep)
	fmt.Print(section)
	if quick || doc == "" {
		return nil
	}
	old, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(doc, []byte(bench.ReplaceKubeSection(string(old), heading, section)), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", doc)
	return nil
}

// components are the processes scripts/k8s-test-cluster started, by name,
// from DIR/pids/NAME ("PID STARTTIME").
func components(dir string) map[string]int {
	out := map[string]int{}
	entries, err := os.ReadDir(filepath.Join(dir, "pids"))
	if err != nil {
		return out
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, "pids", e.Name()))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(data), &pid); err == nil && pid > 0 {
			out[e.Name()] = pid
		}
	}
	return out
}
