package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"odd median is the middle", ms(1, 2, 9), 50, 2 * time.Millisecond},
		{"even median is the mean of the middle two", ms(1, 2, 4, 9), 50, 3 * time.Millisecond},
		{"p99 of fewer than 100 is the maximum", ms(1, 2, 3, 50), 99, 50 * time.Millisecond},
		{"p99 of 1..100 is 99 by nearest rank", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the maximum", ms(1, 5, 6), 100, 6 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %g) = %s, want %s", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeDoesNotReorderItsInput(t *testing.T) {
	in := []time.Duration{3, 1, 2}
	s := Summarize(in, 4)
	want := Summary{N: 3, Failures: 4, Median: 2, P95: 3, P99: 3, Max: 3}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Summarize (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{3, 1, 2}, in); diff != "" {
		t.Errorf("input changed (-want +got):\n%s", diff)
	}
}

func TestMedianFloat(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := MedianFloat(tt.in); got != tt.want {
			t.Errorf("MedianFloat(%v) = %g, want %g", tt.in, got, tt.want)
		}
	}
}

// wrkOutput is what wrk 4.1.0 prints with --latency (through
// configurable-http-proxy, which closes every connection).
const wrkOutput = `Running 2s test @ http://127.0.0.1:19300/user/bench/static/base/images/favicon.ico
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.22ms    1.65ms  10.81ms   72.01%
    Req/Sec     1.26k   299.07     1.84k    75.00%
  Latency Distribution
     50%  850.00us
     75%    4.19ms
     90%    5.36ms
     99%    1.05s
  2503 requests in 2.00s, 77.52MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   1248.54
Transfer/sec:     38.67MB
`

func TestParseWrk(t *testing.T) {
	got, err := ParseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{ReqPerSec: 1248.54, P50: 850 * time.Microsecond, P99: 1050 * time.Millisecond, Requests: 2503, Errors: 12}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseWrk (-want +got):\n%s", diff)
	}
}

func TestParseWrkRejectsOutputWithoutLatency(t *testing.T) {
	out := strings.ReplaceAll(wrkOutput, "99%", "98%")
	if _, err := ParseWrk(out); err == nil {
		t.Error("ParseWrk accepted a report without a 99th percentile")
	}
	if _, err := ParseWrk(strings.ReplaceAll(wrkOutput, "4.19ms", "4.19xs")); err != nil {
		t.Errorf("ParseWrk rejected an unknown unit on a line it does not read: %v", err)
	}
	if _, err := ParseWrk(strings.ReplaceAll(wrkOutput, "850.00us", "850.00xs")); err == nil {
		t.Error("ParseWrk accepted a median with an unknown unit")
	}
}

func TestRenderTable(t *testing.T) {
	got := RenderTable([]Row{
		{Benchmark: "spawn", Metric: "median", Spinbook: "700 ms", Jupyter: "650 ms", Hub: "1200 ms",
			VsJupyter: Ratio(700, 650), VsHub: Ratio(700, 1200), Goal: GoalAtMost("Hub", 700.0/1200, 0.6, "×")},
		{Benchmark: "a|b", Metric: "rate", Spinbook: FormatRate(12345.6), Hub: FormatRate(1000), VsHub: Ratio(12345.6, 1000),
			Goal: GoalAtLeast("Hub", 12.3456, 10, "×")},
	})
	want := `| benchmark | metric | spinbook | Jupyter (direct) | JupyterHub + CHP | spinbook ÷ Jupyter | spinbook ÷ Hub | goal |
|---|---|--:|--:|--:|--:|--:|---|
| spawn | median | 700 ms | 650 ms | 1200 ms | 1.08× | 0.58× | ≤ 0.6× Hub: **met** |
| a\|b | rate | 12346 req/s | – | 1000 req/s | – | 12× | ≥ 10× Hub: **met** |
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RenderTable (-want +got):\n%s", diff)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{FormatDuration(1234 * time.Microsecond), "1.23 ms"},
		{FormatDuration(48 * time.Millisecond), "48.0 ms"},
		{FormatDuration(2200 * time.Millisecond), "2200 ms"},
		{FormatMiB(22 << 20), "22.0 MiB"},
		{Ratio(1, 0), ""},
		{Ratio(0.3, 1), "0.30×"},
		{GoalAtMost("agent", 26, 25, " MiB"), "≤ 25 MiB agent: not met"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	section := BeginMarker + "\nnew table\n" + EndMarker + "\n"
	tests := []struct {
		name, doc, want string
	}{
		{"no file yet", "", "# Benchmarks\n\n## Ours\n\n" + section},
		{"other sections only: appended", "# Benchmarks\n\n## Docker\n\ntheirs", "# Benchmarks\n\n## Docker\n\ntheirs\n\n## Ours\n\n" + section},
		{
			"replaced in place, others kept",
			"# B\n\n## Ours\n\nprose\n\n" + BeginMarker + "\nold table\n" + EndMarker + "\n\n## Model store\n\ntheirs\n",
			"# B\n\n## Ours\n\nprose\n\n" + section + "\n## Model store\n\ntheirs\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ReplaceSection(tt.doc, "## Ours", section, DebianStack())); diff != "" {
				t.Errorf("ReplaceSection (-want +got):\n%s", diff)
			}
		})
	}
}

// Each stack has a section of its own: writing the current stack's table
// leaves the Debian one as it was, and the other way round.
func TestReplaceSectionPerStack(t *testing.T) {
	debian, current := DebianStack(), CurrentStack("/venv", "/chp")
	section := func(s Stack, body string) string {
		begin, end := s.Markers()
		return begin + "\n" + body + "\n" + end + "\n"
	}
	doc := "# B\n\n## Debian\n\n" + section(debian, "old debian") + "\n## Model store\n\ntheirs\n"

	doc = ReplaceSection(doc, "## Current", section(current, "first current"), current)
	want := "# B\n\n## Debian\n\n" + section(debian, "old debian") + "\n## Model store\n\ntheirs\n\n## Current\n\n" + section(current, "first current")
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Fatalf("current appended (-want +got):\n%s", diff)
	}
	doc = ReplaceSection(doc, "## Current", section(current, "second current"), current)
	doc = ReplaceSection(doc, "## Debian", section(debian, "new debian"), debian)
	want = "# B\n\n## Debian\n\n" + section(debian, "new debian") + "\n## Model store\n\ntheirs\n\n## Current\n\n" + section(current, "second current")
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("both replaced in place (-want +got):\n%s", diff)
	}
}

// The current stack runs the venv's JupyterLab on every side, and CHP 5.
func TestCurrentStackRunsOneJupyterEverywhere(t *testing.T) {
	s := CurrentStack("/v", "/c")
	want := Stack{
		Name: "current", Jupyter: []string{"/v/bin/jupyter-lab"}, App: "ServerApp",
		Hub: "/v/bin/jupyterhub", Proxy: "/c/node_modules/.bin/configurable-http-proxy",
		SingleUser: "/v/bin/jupyterhub-singleuser", StaticFile: "static/favicon.ico",
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("CurrentStack (-want +got):\n%s", diff)
	}
	if _, err := StackByName("newest", "."); err == nil || !strings.Contains(err.Error(), "valid: debian, current") {
		t.Errorf("StackByName(newest) = %v, want an error listing the stacks", err)
	}
}

func TestOrderRotates(t *testing.T) {
	seen := map[int][sides]int{} // side -> count per place
	for r := 0; r < sides; r++ {
		for place, side := range order(r) {
			c := seen[side]
			c[place]++
			seen[side] = c
		}
	}
	for side, places := range seen {
		if places != [sides]int{1, 1, 1} {
			t.Errorf("side %d took places %v in %d rounds, want each once", side, places, sides)
		}
	}
}
