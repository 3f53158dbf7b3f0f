// Command spinbench runs spinbook's benchmarks against JupyterHub +
// configurable-http-proxy and a bare Jupyter; bench/run installs what it
// needs and runs it. See docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spinbook/spinbook/bench"
)

// headings name each stack's section of the doc.
var headings = map[string]string{
	"debian":  "## spinbook against JupyterHub + configurable-http-proxy",
	"current": "## On today's Jupyter: JupyterLab 4 against JupyterHub 6 + CHP 5",
}

func main() {
	quick := flag.Bool("quick", false, "a short run to check the harness (about a minute); not written to -doc")
	o := bench.DefaultOptions(false)
	q := bench.DefaultOptions(true)
	flag.StringVar(&o.Bin, "bin", "bin/spinbook", "the spinbook binary")
	doc := flag.String("doc", "docs/benchmarks.md", "where a full run writes its table (between its markers); empty: print only")
	only := flag.String("only", "", "comma-separated subset of "+strings.Join(bench.Benchmarks, ",")+" (not written to -doc)")
	spawnRounds := flag.Int("spawn-rounds", 0, fmt.Sprintf("measured spawn/stop cycles per side (default %d, quick %d)", o.SpawnRounds, q.SpawnRounds))
	rounds := flag.Int("rounds", 0, fmt.Sprintf("interleaved rounds of the other benchmarks (default %d, quick %d)", o.Rounds, q.Rounds))
	wrkDur := flag.Duration("wrk-duration", 0, fmt.Sprintf("per wrk run (default %s, quick %s)", o.Wrk.Duration, q.Wrk.Duration))
	conns := flag.Int("connections", o.Wrk.Connections, "wrk connections")
	trips := flag.Int("round-trips", 0, fmt.Sprintf("kernel round trips per round (default %d, quick %d)", o.RoundTrips, q.RoundTrips))
	loadDur := flag.Duration("load-duration", 0, fmt.Sprintf("probing per load round (default %s, quick %s)", o.LoadDuration, q.LoadDuration))
	kernels := flag.Int("kernels", o.Kernels, "spinning kernels in the load benchmark")
	command := flag.String("command", "", "how this run was invoked, for the report (bench/run sets it)")
	stackName := flag.String("stack", "debian", "the Jupyter every side runs and the peer: debian (Debian 12's notebook 6, JupyterHub 3, CHP 4) or current (scripts/jupyter/lock.txt's JupyterLab 4 and JupyterHub 6, CHP 5 from bench/chp)")
	flag.Parse()

	if *quick {
		bin := o.Bin
		o = q
		o.Bin = bin
	}
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setD := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&o.SpawnRounds, *spawnRounds)
	set(&o.Rounds, *rounds)
	set(&o.RoundTrips, *trips)
	set(&o.Kernels, *kernels)
	set(&o.Wrk.Connections, *conns)
	setD(&o.Wrk.Duration, *wrkDur)
	setD(&o.LoadDuration, *loadDur)
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	stack, err := bench.StackByName(*stackName, ".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}
	o.Stack = stack
	o.Command = *command
	if o.Command == "" {
		o.Command = strings.Join(os.Args, " ")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	section := rep.Render()
	fmt.Print(section)
	if *doc == "" || *quick || *only != "" {
		fmt.Fprintln(os.Stderr, "not written to a doc (quick or partial run, or -doc \"\")")
		return
	}
	old, err := os.ReadFile(*doc)
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*doc, []byte(bench.ReplaceSection(string(old), headings[stack.Name], section, stack)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "wrote", *doc)
}
