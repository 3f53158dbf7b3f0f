package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend/kubernetes/k8stest"
	"github.com/spinbook/spinbook/internal/gitwork/gittest"
)

// TestKubernetesOnBothImages: as TestDockerOnBothImages, on the test
// cluster: the agent's init container, the repo cloned into ~/work on the
// claim, kernels as the image's user with the warehouse's .pgpass, a
// terminal's git status and the push on down work on Debian's notebook 6
// and on the docker-stacks-shaped JupyterLab 4 image.
func TestKubernetesOnBothImages(t *testing.T) {
	for _, f := range []struct {
		name  string
		image func(*k8stest.Cluster) string
	}{
		{"notebook6", func(cl *k8stest.Cluster) string { return cl.JupyterImage }},
		{"lab4", func(cl *k8stest.Cluster) string { return cl.LabImage }},
	} {
		t.Run(f.name, func(t *testing.T) {
			user := "k8-img-" + strings.TrimSuffix(strings.TrimSuffix(f.name, "6"), "4")
			w, cl := newK8sWorldOn(t, f.image, `warehouse:
  host: dw.example.invalid
  database: analytics
  user: nb
  password: ${env:SPINBOOK_E2E_DW_IMAGE}
`)
			w.env = append(w.env, "SPINBOOK_E2E_DW_IMAGE=canary-"+newID())
			g := k8sGitRemote(t, w, cl)

			onImage(t, w, g, user, f.name)
		})
	}
}

// k8sGitRemote serves a team repo seeded with gitSeed at the pod network's
// gateway (this machine, as pods see it) and adds it to w's config. As in
// dockerGitRemote, a proxy in front adds the credentials.
func k8sGitRemote(t *testing.T, w *world, cl *k8stest.Cluster) *gittest.Server {
	t.Helper()
	out, err := cl.Kubectl("get", "node", "localhost", "-o", "jsonpath={.spec.podCIDR}")
	if err != nil {
		t.Fatalf("kubectl get node: %v: %s", err, out)
	}
	cidr, err := netip.ParsePrefix(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the node's podCIDR %q: %v", out, err)
	}
	token := "canary-" + newID()
	g := gittest.New(t, token, "main", gitSeed)
	// The gateway's address exists only once the first pod has made the
	// CNI bridge, after this returns; so listen on every address, and name
	// the gateway's in the URL.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	gateway := cidr.Masked().Addr().Next().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		r.SetBasicAuth("e2e", token)
		g.ServeHTTP(rw, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f, err := os.OpenFile(w.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "repo:\n  url: http://%s/team.git\n  branch: main\n", net.JoinHostPort(gateway, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)))
	f.Close()
	return g
}
