package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
	"github.com/spinbook/spinbook/internal/config"
)

// portalRBAC is deploy/kubernetes/portal-rbac.yaml, what docs/portal-kubernetes.md
// tells people to apply.
var portalRBAC = filepath.Join(k8stest.Root(), "deploy", "kubernetes", "portal-rbac.yaml")

// apiCall is one request the backend made: verb as RBAC names it, the API
// group, resource (with "/subresource"), and the answer's status.
type apiCall struct {
	verb, group, resource string
	status                int
}

func (c apiCall) String() string {
	g := c.group
	if g == "" {
		g = "core"
	}
	return fmt.Sprintf("%s %s/%s", c.verb, g, c.resource)
}

// recorder is an http.RoundTripper that notes every API call.
type recorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	calls []apiCall
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	c := classify(req)
	if err == nil {
		c.status = resp.StatusCode
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return resp, err
}

// classify turns a request into RBAC's terms: /api/v1/namespaces/NS/pods/NAME/log
// is get core pods/log; a GET without a name is list (watch with ?watch).
func classify(req *http.Request) apiCall {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return apiCall{verb: strings.ToLower(req.Method), resource: req.URL.Path}
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	c := apiCall{group: group}
	if len(parts) > 0 {
		c.resource = parts[0]
	}
	named := len(parts) >= 2
	if len(parts) >= 3 {
		c.resource += "/" + parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		c.verb = "get"
		if !named {
			c.verb = "list"
			if req.URL.Query().Get("watch") == "true" {
				c.verb = "watch"
			}
		}
	case http.MethodPost:
		c.verb = "create"
	case http.MethodPut:
		c.verb = "update"
	case http.MethodPatch:
		c.verb = "patch"
	case http.MethodDelete:
		c.verb = "delete"
		if !named {
			c.verb = "deletecollection"
		}
	}
	return c
}

// grants says whether rules allow call.
func grants(rules []rbacv1.PolicyRule, c apiCall) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, c.group) && slices.Contains(r.Resources, c.resource) && slices.Contains(r.Verbs, c.verb) {
			return true
		}
	}
	return false
}

// readPortalRBAC returns the Role's and the ClusterRole's rules.
func readPortalRBAC(t *testing.T) (role, cluster []rbacv1.PolicyRule) {
	t.Helper()
	raw, err := os.ReadFile(portalRBAC)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj rbacv1.Role
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", portalRBAC, err)
		}
		switch obj.Kind {
		case "Role":
			role = obj.Rules
		case "ClusterRole":
			cluster = obj.Rules
		}
	}
	if role == nil || cluster == nil {
		t.Fatalf("%s has no Role or no ClusterRole", portalRBAC)
	}
	return role, cluster
}

// onlyOnRepair are grants the Role keeps for paths a healthy run does not
// take, each with its reason; every other grant must be used.
var onlyOnRepair = map[string]string{
	"update core/secrets":                      "putSecret replaces a Secret a failed start left behind",
	"update networking.k8s.io/networkpolicies": "ensureNetworkPolicy follows a changed set of nodes",
	"list core/events":                         "unboundClaim lists a claim's events when it does not bind; waitReady lists a pod's when the watch on them fails",
}

// TestPortalRole runs the backend the way the portal does in its pod:
// with the ServiceAccount of deploy/kubernetes/portal-rbac.yaml and
// nothing else. Every call it makes must be granted (and answered without
// 403), and every grant must be used, so the Role is what the code needs,
// no more.
func TestPortalRole(t *testing.T) {
	_, cl := newBackend(t, nil)
	ns := "sb-portal-rbac"
	role, cluster := readPortalRBAC(t)

	raw, err := os.ReadFile(portalRBAC)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "rbac.yaml")
	if err := os.WriteFile(manifest, bytes.ReplaceAll(raw, []byte("namespace: notebooks"), []byte("namespace: "+ns)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cl.Kubectl("create", "namespace", ns); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("create namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { cl.Kubectl("delete", "namespace", ns, "--wait=false") })
	if out, err := cl.Kubectl("apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply %s: %v: %s", portalRBAC, err, out)
	}
	token, err := cl.Kubectl("create", "token", "spinbook-portal", "-n", ns, "--duration", "1h")
	if err != nil {
		t.Fatalf("kubectl create token: %v: %s", err, token)
	}

	admin, err := clientcmd.BuildConfigFromFlags("", cl.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	sa := &rest.Config{
		Host:            admin.Host,
		BearerToken:     strings.TrimSpace(token),
		TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CAFile: admin.CAFile},
		WrapTransport:   func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec },
	}
	cs, err := kubernetes.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	newAs := func(ingress bool) *Kubernetes {
		c := config.Default()
		c.Backend = "kubernetes"
		c.Image = cl.JupyterImage
		c.Kubernetes.Namespace = ns
		c.Kubernetes.AgentImage = cl.AgentImage
		c.Kubernetes.StopGrace = "20s"
		if ingress {
			c.Kubernetes.Ingress = config.KubernetesIngress{Class: "nginx", Host: "nb.example.test", TLSSecret: "nb-wildcard"}
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return &Kubernetes{cfg: c, cs: cs, rest: sa, ns: ns, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}

	ctx := t.Context()
	for _, tc := range []struct {
		user    string
		ingress bool
	}{{"rbac-nodeport", false}, {"rbac-ingress", true}} {
		k := newAs(tc.ingress)
		s := spec(t, tc.user, "pw")
		t.Cleanup(func() { k.Down(context.Background(), s.User, nop); k.Purge(context.Background(), s.User, nop) })
		if _, err := k.Up(ctx, s, nop); err != nil {
			t.Fatalf("Up as the portal's ServiceAccount (%s): %v", tc.user, err)
		}
		if st, err := k.Status(ctx, s.User); err != nil || !st.Ready {
			t.Fatalf("Status: %+v, %v", st, err)
		}
		if list, err := k.List(ctx); err != nil || !slices.ContainsFunc(list, func(s backend.Server) bool { return s.User == tc.user }) {
			t.Fatalf("List: %+v, %v", list, err)
		}
		if err := k.Logs(ctx, s.User, false, io.Discard); err != nil {
			t.Fatalf("Logs: %v", err)
		}
		if err := k.Down(ctx, s.User, nop); err != nil {
			t.Fatalf("Down: %v", err)
		}
		if err := k.Purge(ctx, s.User, nop); err != nil {
			t.Fatalf("Purge: %v", err)
		}
	}
	// A server that cannot start: its events and the pod's log are read.
	k := newAs(false)
	k.cfg.Image = "spinbook.invalid/no-such-image:1"
	bad := spec(t, "rbac-noimage", "pw")
	t.Cleanup(func() { k.Down(context.Background(), bad.User, nop); k.Purge(context.Background(), bad.User, nop) })
	if _, err := k.Up(ctx, bad, nop); err == nil || !strings.Contains(err.Error(), "cannot be pulled") {
		t.Fatalf("Up with a missing image: %v; want it to say the image cannot be pulled", err)
	}

	rec.mu.Lock()
	calls := slices.Clone(rec.calls)
	rec.mu.Unlock()
	used := map[string]bool{}
	for _, c := range calls {
		used[c.String()] = true
		rules := role
		if c.resource == "nodes" {
			rules = cluster
		}
		if !grants(rules, c) {
			t.Errorf("the backend made %s, which %s does not grant", c, portalRBAC)
		}
		if c.status == http.StatusForbidden {
			t.Errorf("%s was forbidden", c)
		}
	}
	var unused []string
	for _, rules := range [][]rbacv1.PolicyRule{role, cluster} {
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						c := apiCall{verb: v, group: g, resource: res}.String()
						if !used[c] && onlyOnRepair[c] == "" {
							unused = append(unused, c)
						}
					}
				}
			}
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("%s grants what the backend never used: %v; drop it, or say in onlyOnRepair which path needs it", portalRBAC, unused)
	}
	if t.Failed() {
		var all []string
		for c := range used {
			all = append(all, c)
		}
		sort.Strings(all)
		t.Logf("calls made: %v", all)
	}
}
