package bench

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/config"
)

func TestPodGateway(t *testing.T) {
	for _, tt := range []struct{ cidr, want string }{
		{"10.244.0.0/24", "10.244.0.1"},
		{" 10.244.3.0/24\n", "10.244.3.1"},
		{"10.244.3.7/24", "10.244.3.1"},
		{"fd00:10::/64", "fd00:10::1"},
	} {
		got, err := podGateway(tt.cidr)
		if err != nil || got != tt.want {
			t.Errorf("podGateway(%q) = %q, %v; want %q", tt.cidr, got, err, tt.want)
		}
	}
	if _, err := podGateway(""); err == nil || !strings.Contains(err.Error(), "pod CIDR") {
		t.Errorf("podGateway(\"\") = %v, want an error naming the pod CIDR", err)
	}
}

func TestCountActive(t *testing.T) {
	body := `[{"name":"a","servers":{"":{"ready":true}}},{"name":"b","servers":{"":{"ready":false,"pending":"spawn"}}},{"name":"c","servers":{}},{"name":"d","servers":{"":{"ready":true},"x":{"ready":true}}}]`
	if n, err := countActive([]byte(body)); err != nil || n != 3 {
		t.Errorf("countActive = %d, %v; want 3 ready servers", n, err)
	}
	if _, err := countActive([]byte("<html>")); err == nil {
		t.Error("countActive accepted a body that is not JSON")
	}
}

func TestCountReady(t *testing.T) {
	out := `[{"user":"a","state":"running","ready":true},{"user":"b","state":"running","ready":false},{"user":"c","state":"stopped"}]`
	if n, err := countReady([]byte(out)); err != nil || n != 1 {
		t.Errorf("countReady = %d, %v; want 1", n, err)
	}
	if _, err := countReady([]byte("no servers")); err == nil {
		t.Error("countReady accepted output that is not JSON")
	}
}

func TestIsPodAgent(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    bool
	}{
		{"/opt/spinbook/spinbook\x00agent\x00", true},
		{"/opt/spinbook/spinbook\x00agent\x00stage\x00--bin-dir\x00/opt/spinbook\x00", true},
		{"/usr/local/bin/spinbook\x00agent\x00", false}, // a local-backend agent on the host
		{"/opt/spinbook/spinbook\x00version\x00", false},
		{"", false},
	} {
		if got := isPodAgent([]byte(tt.cmdline)); got != tt.want {
			t.Errorf("isPodAgent(%q) = %v, want %v", tt.cmdline, got, tt.want)
		}
	}
}

// The spinbook side's config is one spinbook accepts, on the kubernetes
// backend with the image, kubeconfig and agent image given.
func TestKubeSpinbookConfigIsValid(t *testing.T) {
	hash := "$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	c, err := config.Parse([]byte(kubeSpinbookConfig(hash, "spinbook-test/jupyterlab:x", "/tmp/kc", "spinbook.local/agent:1")), "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != "kubernetes" || c.Image != "spinbook-test/jupyterlab:x" || c.Kubernetes.Kubeconfig != "/tmp/kc" ||
		c.Kubernetes.AgentImage != "spinbook.local/agent:1" || c.Access.PasswordHash != hash {
		t.Errorf("parsed config = backend %q image %q kubeconfig %q agent %q hash %q", c.Backend, c.Image, c.Kubernetes.Kubeconfig, c.Kubernetes.AgentImage, c.Access.PasswordHash)
	}
}

// The hub spawns the same image, reaches the pods' hub API on the node's
// gateway, and gives each user a workspace claim like spinbook's.
func TestKubeHubConfig(t *testing.T) {
	h := &kubeHub{hubProc: hubProc{dir: "/d", proxyPort: 1, hubPort: 2, apiPort: 3, serviceToken: "tok"},
		venv: "/v", chp: "/c", ns: "default", image: "img:1", hubConnectIP: "10.244.0.1"}
	cfg := h.config()
	for _, want := range []string{
		"c.KubeSpawner.image = 'img:1'", "c.Spawner.hub_connect_url = 'http://10.244.0.1:2'", "c.JupyterHub.hub_port = 2",
		"c.ConfigurableHTTPProxy.command = ['/c/node_modules/.bin/configurable-http-proxy']", "c.KubeSpawner.storage_capacity = '10Gi'",
		"c.KubeSpawner.image_pull_policy = 'IfNotPresent'", "'api_token': 'tok'",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("hub config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "{{") {
		t.Errorf("hub config has an unfilled placeholder:\n%s", cfg)
	}
}

func TestUsersAndOrder2(t *testing.T) {
	if diff := cmp.Diff([]string{"kb-08", "kb-09", "kb-10"}, users("kb-", 8, 11)); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	if users("kb-", 3, 3) != nil {
		t.Error("users of an empty range is not empty")
	}
	if order2(0)[0] == order2(1)[0] {
		t.Error("order2 does not alternate which side goes first")
	}
}

func TestKubeRowsGoals(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	r := kubeResults{
		warm:     [kubeSides][]time.Duration{ms(1000, 1200, 1100), ms(4000, 4400, 4200)},
		cold:     [kubeSides][]time.Duration{ms(3000), ms(5000)},
		coldLoad: ms(9000),
		simWall:  [kubeSides]time.Duration{6 * time.Second, 10 * time.Second},
		simFail:  [kubeSides]int{0, 1},
		ctlIdle:  100 << 20, ctlBusy: 120 << 20,
		agentRSS: []int64{20 << 20, 30 << 20},
		ls:       [kubeSides][]time.Duration{ms(300, 200, 250), ms(50, 60, 40)},
		lsCount:  [kubeSides]int{10, 10},
	}
	rows := r.rows(KubeOptions{Simultaneous: 10, LsServers: 10})
	find := func(bench, metric string) Row {
		for _, row := range rows {
			if strings.HasPrefix(row.Benchmark, bench) && strings.HasPrefix(row.Metric, metric) {
				return row
			}
		}
		t.Fatalf("no row %q / %q in %+v", bench, metric, rows)
		return Row{}
	}
	if row := find("spawn, warm", "request until"); row.Spinbook != "1100 ms" || row.Hub != "4200 ms" || row.VsHub != "0.26×" || row.Goal != "≤ 0.5× Hub: **met**" {
		t.Errorf("warm row = %+v", row)
	}
	if row := find("10 users", "wall"); row.VsHub != "0.60×" || row.Goal != "≤ 0.5× Hub: not met" {
		t.Errorf("simultaneous row = %+v", row)
	}
	if row := find("10 users", "failures"); row.Spinbook != "0" || row.Hub != "1" || row.Goal != "0 failures: **met**" {
		t.Errorf("failures row = %+v", row)
	}
	if row := find("memory", "per server"); row.Spinbook != "25.0 MiB" || row.Hub != "2.0 MiB" {
		t.Errorf("memory row = %+v", row)
	}
	if row := find("ls", "`spinbook ls"); row.Spinbook != "250 ms" || row.Hub != "50.0 ms" {
		t.Errorf("ls row = %+v", row)
	}
}

func TestRenderAndReplaceKubeSection(t *testing.T) {
	rep := Report{Date: time.Date(2026, 12, 6, 5, 30, 0, 0, time.UTC), Command: "bench/kube/run", Machine: []string{"nproc 2"},
		Versions: []string{"x 1"}, Rows: []Row{{Benchmark: "b", Metric: "m", Spinbook: "1 ms", Jupyter: "ignored", Hub: "2 ms", VsHub: "0.50×"}}}
	section := RenderKube(rep)
	for _, want := range []string{KubeBeginMarker, KubeEndMarker, "| benchmark | metric | spinbook | JupyterHub + KubeSpawner + CHP | spinbook ÷ Hub | goal |",
		"| b | m | 1 ms | 2 ms | 0.50× | – |", "Run 2026-12-06 05:30 UTC"} {
		if !strings.Contains(section, want) {
			t.Errorf("RenderKube lacks %q:\n%s", want, section)
		}
	}
	if strings.Contains(section, "ignored") {
		t.Error("RenderKube printed the Jupyter column")
	}
	// Appended under its heading once, then replaced in place; the other
	// sections stay.
	doc := "# B\n\n" + BeginMarker + "\nlocal\n" + EndMarker + "\n"
	doc = ReplaceKubeSection(doc, "## K", KubeBeginMarker+"\nfirst\n"+KubeEndMarker+"\n")
	doc = ReplaceKubeSection(doc, "## K", KubeBeginMarker+"\nsecond\n"+KubeEndMarker+"\n")
	want := "# B\n\n" + BeginMarker + "\nlocal\n" + EndMarker + "\n\n## K\n\n" + KubeBeginMarker + "\nsecond\n" + KubeEndMarker + "\n"
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("ReplaceKubeSection (-want +got):\n%s", diff)
	}
}

// readProgress ends at the event that says the server is ready, fails with
// the hub's message at one that says it failed, and fails when the events
// end before either.
func TestReadProgress(t *testing.T) {
	for _, tt := range []struct {
		name, stream, wantErr string
	}{
		{"ready", "data: {\"progress\": 0, \"message\": \"Server requested\"}\n\n" +
			"data: {\"progress\": 50, \"message\": \"pod started\"}\n\n" +
			"data: {\"progress\": 100, \"ready\": true, \"message\": \"Server ready at /user/a/\"}\n\n", ""},
		{"ready, comments and keep-alives between", ":keepalive\n\ndata: {\"ready\": true}\n\n", ""},
		{"failed", "data: {\"progress\": 10}\n\ndata: {\"failed\": true, \"message\": \"Spawn failed: pod timeout\"}\n\n", "Spawn failed: pod timeout"},
		{"ended early", "data: {\"progress\": 10}\n\n", "ended before the server was ready"},
		{"not json", "data: <html>\n\n", "progress event"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := readProgress(strings.NewReader(tt.stream))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("readProgress = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("readProgress = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// parseBusy counts user, nice, system, irq, softirq and steal, not idle,
// iowait or the guest times (already in user).
func TestParseBusy(t *testing.T) {
	stat := "cpu  100 20 30 5000 7 1 2 3 40 50\ncpu0 50 10 15 2500 3 0 1 1 20 25\nintr 1 2 3\n"
	if got, want := parseBusy(stat), time.Duration(100+20+30+1+2+3)*time.Second/clockTick; got != want {
		t.Errorf("parseBusy = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "intr 1 2\n", "cpu 1 2\n"} {
		if got := parseBusy(bad); got != 0 {
			t.Errorf("parseBusy(%q) = %s, want 0", bad, got)
		}
	}
}

// procCPU reads this test's own processor time from /proc: more than
// nothing once it has spun a little, and 0 for a process that is gone.
func TestProcCPU(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	for procCPU(os.Getpid()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("procCPU of this process stayed 0 after spinning 10 s")
		}
		for i := 0; i < 1e6; i++ {
			_ = strconv.Itoa(i)
		}
	}
	if got := procCPU(1 << 30); got != 0 {
		t.Errorf("procCPU of no process = %s, want 0", got)
	}
}

// topCPU names the components that used the most first; clusterSince
// reads a live process's time and never goes below zero.
func TestClusterCPU(t *testing.T) {
	used := map[string]time.Duration{"etcd": time.Second, "kubelet": 3 * time.Second, "kube-router": 2 * time.Second}
	if got, want := topCPU(used, 2), "kubelet 3.0 s, kube-router 2.0 s"; got != want {
		t.Errorf("topCPU = %q, want %q", got, want)
	}
	if got := topCPU(nil, 3); got != "" {
		t.Errorf("topCPU(nil) = %q, want empty", got)
	}
	self := map[string]int{"test": os.Getpid()}
	start := clusterCPU(self)
	start["gone"] = time.Second // a component that is no longer there
	each, total := clusterSince(self, map[string]time.Duration{"test": start["test"] + time.Hour})
	if each["test"] != 0 || total != 0 {
		t.Errorf("clusterSince with a later start = %v, %s; want 0", each, total)
	}
	if _, _, comm := procTimes(os.Getpid()); comm == "" {
		t.Error("procTimes found no command name for this process")
	}
}
