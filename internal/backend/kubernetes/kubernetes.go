// Package kubernetes runs each user's server as a Pod on a Kubernetes
// cluster, through client-go (kubeconfig from kubernetes.kubeconfig,
// $KUBECONFIG, ~/.kube/config, or the in-cluster configuration).
//
// Per user it makes, all labelled managed-by=spinbook and spinbook.user=USER:
//
//   - a Secret spinbook-USER holding the agent spec (password hash, secrets,
//     control token) as the file spec.json, and the control token alone,
//     which Status reads back for save and down;
//   - a PersistentVolumeClaim spinbook-USER-work, the workspace, kept across
//     down and up (`down --purge` deletes it);
//   - a Pod spinbook-USER running the configured image unmodified: an init
//     container from kubernetes.agent_image (only the static spinbook binary)
//     copies the binary into an emptyDir and the spec from the Secret — which
//     only the init container mounts — into a memory emptyDir, 0600 as the
//     image's user; the main container's command is the agent, which reads
//     and removes the spec as on the other backends. The pod gets no service
//     account token, so kernels cannot read the Secret from the API;
//   - a Service spinbook-USER: a NodePort, or a ClusterIP behind an Ingress
//     USER.HOST when kubernetes.ingress.host is set;
//   - a NetworkPolicy spinbook-USER that keeps other pods off the pod's
//     ports (netpol.go).
//
// A plain Pod, not a one-replica StatefulSet: a server that stops (idle,
// a failure) must stay stopped until `spinbook up`, and its spec is handed
// over once; a controller would restart it without the spec. Readiness is the
// agent's /readyz and liveness its /healthz on the health port, never
// Jupyter, so a busy kernel never gets the pod killed.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

var (
	_ backend.Backend = (*Kubernetes)(nil)
	_ backend.Logger  = (*Kubernetes)(nil)
	_ backend.Purger  = (*Kubernetes)(nil)
)

// annotDigest carries Spec.AccessDigest as an annotation: 64 hex digits
// are too long for a label value.
const annotDigest = backend.LabelAccessDigest

// Where things live inside the pod.
const (
	binDir    = "/opt/spinbook"
	agentPath = binDir + "/spinbook"
	runDir    = "/run/spinbook" // memory emptyDir: the spec, exit.json
	specPath  = runDir + "/spec.json"
	// probeCacheDir is the agent's CacheDir: what it learned of Jupyter's
	// options, which the backend carries to the next pod
	// (internal/backend/probecarry.go).
	probeCacheDir = runDir + "/cache"
	secretDir     = "/etc/spinbook-spec" // the Secret, in the init container only
	specKey       = "spec.json"
	tokenKey      = "control-token"
	mainName      = "notebook"
	initName      = "spinbook-agent"
	frontPort     = 8888
	healthPort    = 8889
	frontName     = "front"
	healthName    = "health"
	defaultShm    = 64 << 20
	progressTick  = 500 * time.Millisecond
)

// Kubernetes is the kubernetes backend.
type Kubernetes struct {
	cfg  *config.Config
	cs   kubernetes.Interface
	rest *rest.Config
	ns   string
	log  *slog.Logger
}

// New returns the kubernetes backend for cfg. Nothing is contacted yet.
func New(cfg *config.Config, log *slog.Logger) (*Kubernetes, error) {
	rc, err := restConfig(cfg.Kubernetes.Kubeconfig)
	if err != nil {
		return nil, err
	}
	// client-go's default, 5 requests a second (bursts of 10), would
	// queue `ls` of many servers and an `up` following its pod; kubectl
	// allows 50 (bursts of 300). The API server's own fairness still holds.
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Kubernetes{cfg: cfg, cs: cs, rest: rc, ns: cfg.Kubernetes.Namespace, log: log}, nil
}

// restConfig finds the cluster: kubernetes.kubeconfig, else $KUBECONFIG or
// ~/.kube/config, else the in-cluster configuration.
func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return rc, nil
	}
	if kubeconfig == "" {
		if ic, ierr := rest.InClusterConfig(); ierr == nil {
			return ic, nil
		}
	}
	return nil, fmt.Errorf("kubernetes: no cluster configuration (kubernetes.kubeconfig %q, $KUBECONFIG, ~/.kube/config, in-cluster): %w", kubeconfig, err)
}

// Name implements backend.Backend.
func (k *Kubernetes) Name() string { return "kubernetes" }

// Timeout implements backend.Patient: pulling a Jupyter image onto a node
// takes minutes.
func (k *Kubernetes) Timeout(command string) time.Duration {
	switch command {
	case "up":
		return 15 * time.Minute
	case "down":
		return k.cfg.Kubernetes.StopGraceDuration + 2*time.Minute
	}
	return 5 * time.Minute
}

// Names of what the backend makes for user.
func PodName(user string) string { return "spinbook-" + user }
func PVCName(user string) string { return "spinbook-" + user + "-work" }

func labels(user string) map[string]string {
	return map[string]string{backend.LabelManaged: backend.ManagedBy, backend.LabelUser: user}
}

func selector(user string) string {
	return backend.LabelManaged + "=" + backend.ManagedBy + "," + backend.LabelUser + "=" + user
}

func (k *Kubernetes) meta(user string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: PodName(user), Namespace: k.ns, Labels: labels(user)}
}

// Up implements backend.Backend.
func (k *Kubernetes) Up(ctx context.Context, spec backend.Spec, progress func(backend.Event)) (backend.Server, error) {
	if err := ctx.Err(); err != nil {
		return backend.Server{}, fmt.Errorf("up: %w", context.Cause(ctx))
	}
	user := spec.User
	var size config.Size
	if spec.Size != "" {
		s, err := k.cfg.LookupSize(spec.Size)
		if err != nil {
			return backend.Server{}, err
		}
		size = s
	}
	// The NetworkPolicy before anything else, for a server started before
	// spinbook made one too: no pod of the user's is reachable without it.
	// The pod is read meanwhile; nothing is created before both are done.
	cn := k.clusterNet(ctx)
	for _, w := range k.proxyWarnings(cn) {
		progress(backend.Event{Message: "Warning: " + w})
	}
	var npErr error
	var wg sync.WaitGroup
	wg.Go(func() { npErr = k.ensureNetworkPolicy(ctx, user, cn) })
	pod, err := k.pod(ctx, user)
	wg.Wait()
	if npErr != nil {
		return backend.Server{}, npErr
	}
	if err != nil {
		return backend.Server{}, err
	}
	if pod != nil && live(pod) && pod.Annotations[annotDigest] != spec.AccessDigest {
		progress(backend.Event{Message: "the access settings (password, allowlist, trusted proxies or TLS) changed; restarting the server so that they take effect and old sessions end"})
		if err := k.Down(ctx, user, progress); err != nil {
			return backend.Server{}, err
		}
		pod = nil
	}
	if pod != nil {
		if live(pod) {
			srv := k.server(ctx, pod)
			if srv.Ready {
				srv.ControlToken = k.controlToken(ctx, user)
				return srv, nil
			}
			progress(backend.Event{Message: "server already starting; waiting for it"})
			srv, err := k.waitReady(ctx, user, progress)
			srv.ControlToken = k.controlToken(ctx, user)
			return srv, err
		}
		progress(backend.Event{Message: fmt.Sprintf("the previous pod ended (%s); starting a new one", podEnd(pod))})
		if err := k.deletePod(ctx, user, 0); err != nil {
			return backend.Server{}, err
		}
	}

	svc, as, err := k.prepare(ctx, spec, size, cn, progress)
	if err != nil {
		return backend.Server{}, err
	}
	p := podSpec(k.cfg, spec, size)
	p.Namespace = k.ns
	if _, err := k.cs.CoreV1().Pods(k.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return backend.Server{}, fmt.Errorf("create pod %s: another spinbook command is bringing it up; try again in a moment", PodName(user))
		}
		return backend.Server{}, k.undo(ctx, spec, fmt.Errorf("create pod %s: %w", PodName(user), err))
	}
	progress(backend.Event{Message: fmt.Sprintf("pod %s/%s created; service %s (%s)", k.ns, PodName(user), svc.Name, svc.Spec.Type)})
	srv, err := k.waitReady(ctx, user, progress)
	if err != nil {
		return backend.Server{}, k.undo(ctx, spec, err)
	}
	srv.ControlToken = as.ControlToken
	srv.Started = true
	backend.KeepProbe(ctx, k.log, "kubernetes", srv, as.ControlToken, k.cfg.Image, as.ProbeCache)
	return srv, nil
}

// undo removes what a failed Up made, but the workspace, and returns err.
func (k *Kubernetes) undo(ctx context.Context, spec backend.Spec, err error) error {
	if spec.KeepFailed {
		return err
	}
	rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	k.remove(rmCtx, spec.User, 0)
	return err
}

// live: the pod is scheduled or running, not ended.
func live(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && (p.Status.Phase == corev1.PodPending || p.Status.Phase == corev1.PodRunning || p.Status.Phase == "")
}

// podGrace is the pod's terminationGracePeriodSeconds: stop_grace for the
// agent's save, and 15 s more for stopping the kernels.
func podGrace(kc config.Kubernetes) time.Duration {
	return kc.StopGraceDuration + 15*time.Second
}

// agentSpec fills in where things live in the pod.
func (k *Kubernetes) agentSpec(spec backend.Spec, cn clusterNet) (backend.AgentSpec, error) {
	kc := k.cfg.Kubernetes
	as, err := spec.AgentSpec()
	if err != nil {
		return as, err
	}
	as.User = spec.User
	as.Workspace = path.Join(kc.Home, "work")
	as.StateDir = runDir
	as.CredentialsDir = kc.Home
	as.CacheDir = probeCacheDir
	as.ProbeCache = backend.KeptProbe("kubernetes", k.cfg.Image)
	as.BundleDir = path.Join(as.Workspace, ".git", "spinbook-bundles")
	// The agent fits its save on SIGTERM into the pod's grace.
	as.StopGrace = podGrace(kc)
	as.InheritListeners = false
	as.Listen = "0.0.0.0"
	as.FrontPort = frontPort
	as.HealthPort = healthPort
	if kc.Ingress.TLSSecret != "" {
		as.BehindTLS = true
	}
	as.Allow = allowWithNodes(as.Allow, cn.Gateways)
	// The front door answers the host of the URL (describe), besides
	// access.hosts.
	if kc.Ingress.Host != "" {
		as.Hosts = append(slices.Clip(as.Hosts), spec.User+"."+kc.Ingress.Host)
	} else {
		as.Hosts = append(slices.Clip(as.Hosts), k.nodeAddress())
	}
	return as, nil
}

// allowWithNodes adds the pod network's gateway on each node when allow
// admits this machine (loopback): a client on a node reaching a NodePort
// on 127.0.0.1 arrives through kube-proxy's masquerade, from the node's
// address on the pod network (the first address of its pod CIDR), never
// from 127.0.0.1. Clients from elsewhere keep their own address when the
// Service keeps it (externalTrafficPolicy Local).
func allowWithNodes(allow []string, gateways []netip.Addr) []string {
	if !backend.AllowsLoopback(allow) {
		return allow
	}
	out := append([]string(nil), allow...)
	for _, gw := range gateways {
		out = append(out, netip.PrefixFrom(gw, gw.BitLen()).String())
	}
	return out
}

// Down implements backend.Backend: the pod gets SIGTERM and
// kubernetes.stop_grace to save and stop its kernels, then Pod, Service,
// Ingress and Secret are deleted; the workspace claim stays.
func (k *Kubernetes) Down(ctx context.Context, user string, progress func(backend.Event)) error {
	pod, err := k.pod(ctx, user)
	if err != nil {
		return err
	}
	grace := int64(podGrace(k.cfg.Kubernetes) / time.Second)
	if pod != nil && live(pod) {
		progress(backend.Event{Message: fmt.Sprintf("stopping pod %s (up to %s for the agent to save and stop its kernels)", PodName(user), k.cfg.Kubernetes.StopGraceDuration)})
	}
	return k.remove(ctx, user, grace)
}

// remove deletes what a server is made of, but its workspace, and waits
// for the pod to be gone.
func (k *Kubernetes) remove(ctx context.Context, user string, grace int64) error {
	if err := k.deletePod(ctx, user, grace); err != nil {
		return err
	}
	name := PodName(user)
	var errs []error
	if err := k.cs.CoreV1().Services(k.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete service %s: %w", name, err))
	}
	if k.cfg.Kubernetes.Ingress.Host != "" {
		if err := k.cs.NetworkingV1().Ingresses(k.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete ingress %s: %w", name, err))
		}
	}
	if err := k.cs.CoreV1().Secrets(k.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete secret %s: %w", name, err))
	}
	// Last, once the pod is gone.
	if err := k.cs.NetworkingV1().NetworkPolicies(k.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
		errs = append(errs, fmt.Errorf("delete network policy %s: %w", name, err))
	}
	return errors.Join(errs...)
}

// deletePod deletes user's pod with grace seconds and waits until it is gone.
func (k *Kubernetes) deletePod(ctx context.Context, user string, grace int64) error {
	name := PodName(user)
	pods := k.cs.CoreV1().Pods(k.ns)
	err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", name, k.explain(err))
	}
	for {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("wait for pod %s to go: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for pod %s to go: %w", name, context.Cause(ctx))
		case <-time.After(progressTick):
		}
	}
}

// Purge implements backend.Purger: it deletes user's workspace claim.
func (k *Kubernetes) Purge(ctx context.Context, user string, progress func(backend.Event)) error {
	pod, err := k.pod(ctx, user)
	if err != nil {
		return err
	}
	if pod != nil {
		return fmt.Errorf("purge %s's workspace: the server still exists; run `spinbook down` first", user)
	}
	progress(backend.Event{Message: fmt.Sprintf("deleting the workspace volume claim %s", PVCName(user))})
	err = k.cs.CoreV1().PersistentVolumeClaims(k.ns).Delete(ctx, PVCName(user), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete workspace claim %s: %w", PVCName(user), err)
	}
	return nil
}

// Status implements backend.Backend.
func (k *Kubernetes) Status(ctx context.Context, user string) (backend.Server, error) {
	pod, err := k.pod(ctx, user)
	if err != nil {
		return backend.Server{}, err
	}
	if pod == nil {
		return backend.Server{User: user, Backend: k.Name(), State: backend.Absent}, nil
	}
	srv := k.server(ctx, pod)
	if srv.State == backend.Running {
		srv.ControlToken = k.controlToken(ctx, user)
	}
	return srv, nil
}

// List implements backend.Backend: every pod labelled as spinbook's, with
// its Service's URLs and, for a running one, its control token (for the
// agent's idle report): three lists at once, whatever the number of servers.
func (k *Kubernetes) List(ctx context.Context) ([]backend.Server, error) {
	sel := metav1.ListOptions{LabelSelector: backend.LabelManaged + "=" + backend.ManagedBy + "," + backend.LabelUser}
	var (
		wg           sync.WaitGroup
		svcList      *corev1.ServiceList
		secretList   *corev1.SecretList
		svcErr, sErr error
	)
	wg.Go(func() { svcList, svcErr = k.cs.CoreV1().Services(k.ns).List(ctx, sel) })
	wg.Go(func() { secretList, sErr = k.cs.CoreV1().Secrets(k.ns).List(ctx, sel) })
	pods, err := k.cs.CoreV1().Pods(k.ns).List(ctx, sel)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", k.ns, k.explain(err))
	}
	svcs := map[string]*corev1.Service{}
	if svcErr == nil {
		for i := range svcList.Items {
			svcs[svcList.Items[i].Name] = &svcList.Items[i]
		}
	} else {
		k.log.Debug("list services; URLs left out", "err", svcErr)
	}
	tokens := map[string]string{}
	if sErr == nil {
		for _, s := range secretList.Items {
			tokens[s.Name] = string(s.Data[tokenKey])
		}
	} else {
		k.log.Debug("list secrets; no control tokens", "err", sErr)
	}
	var out []backend.Server
	for i := range pods.Items {
		p := &pods.Items[i]
		user := p.Labels[backend.LabelUser]
		if config.ValidateUser(user) != nil || p.Name != PodName(user) {
			continue
		}
		srv := k.serverWith(p, svcs[p.Name])
		if srv.State == backend.Running {
			srv.ControlToken = tokens[p.Name]
		}
		out = append(out, srv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// Logs implements backend.Logger: the main container's output, which is
// the agent's log and Jupyter's.
func (k *Kubernetes) Logs(ctx context.Context, user string, follow bool, w io.Writer) error {
	pod, err := k.pod(ctx, user)
	if err != nil {
		return err
	}
	if pod == nil {
		return fmt.Errorf("no log for user %s: there is no pod %s (its log goes with it on `spinbook down`)", user, PodName(user))
	}
	rc, err := k.cs.CoreV1().Pods(k.ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: mainName, Follow: follow}).Stream(ctx)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read log: %w", err)
	}
	return nil
}

// pod returns user's pod, or nil when there is none.
func (k *Kubernetes) pod(ctx context.Context, user string) (*corev1.Pod, error) {
	p, err := k.cs.CoreV1().Pods(k.ns).Get(ctx, PodName(user), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("get pod: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("get pod %s/%s: %w", k.ns, PodName(user), k.explain(err))
	}
	if p.Labels[backend.LabelManaged] != backend.ManagedBy || p.Labels[backend.LabelUser] != user {
		return nil, fmt.Errorf("pod %s/%s exists but was not made by spinbook for %s; rename or remove it", k.ns, p.Name, user)
	}
	return p, nil
}

// explain adds what to do to an error reaching the cluster.
func (k *Kubernetes) explain(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%w (is the cluster at %s reachable? kubernetes.kubeconfig, $KUBECONFIG)", err, k.rest.Host)
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w (spinbook needs to manage pods, services, secrets, persistentvolumeclaims, events and ingresses in namespace %s; see docs/kubernetes.md)", err, k.ns)
	}
	return err
}

// server describes pod as it is now.
func (k *Kubernetes) server(ctx context.Context, p *corev1.Pod) backend.Server {
	return k.serverWith(p, k.service(ctx, p))
}

// serverWith is server with the pod's Service (nil: none, or unknown).
func (k *Kubernetes) serverWith(p *corev1.Pod, svc *corev1.Service) backend.Server {
	srv := k.describeWith(p, svc)
	switch {
	case p.Status.Phase == corev1.PodSucceeded:
		srv.State = backend.Stopped
		srv.Detail = "stopped; run `spinbook up` to start it again"
	case p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil:
		srv.State = backend.Failed
		srv.Detail = "the pod is not running (" + podEnd(p) + "); run `spinbook up` to start it again, `spinbook logs` to see why"
	default:
		srv.State = backend.Running
		// Ready as up sees it: the kubelet's probe, or before its next
		// period the agent's own /readyz (waitReady returns on that).
		srv.Ready = podReady(p) || mainRunning(p) && srv.HealthURL != "" && agentReady(srv.HealthURL)
		if !srv.Ready {
			srv.Detail = "Jupyter is starting or not answering"
		}
	}
	return srv
}

// describe fills what the pod and its Service say: URLs, workspace, start.
func (k *Kubernetes) describe(ctx context.Context, p *corev1.Pod) backend.Server {
	return k.describeWith(p, k.service(ctx, p))
}

// service is pod's Service, or nil (behind an Ingress its URL needs none).
func (k *Kubernetes) service(ctx context.Context, p *corev1.Pod) *corev1.Service {
	if k.cfg.Kubernetes.Ingress.Host != "" {
		return nil
	}
	svc, err := k.cs.CoreV1().Services(k.ns).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return svc
}

// describeWith is describe with the pod's Service given.
func (k *Kubernetes) describeWith(p *corev1.Pod, svc *corev1.Service) backend.Server {
	user := p.Labels[backend.LabelUser]
	kc := k.cfg.Kubernetes
	srv := backend.Server{
		User: user, Backend: k.Name(), AccessDigest: p.Annotations[annotDigest],
		Workspace: fmt.Sprintf("%s (volume claim %s/%s)", path.Join(kc.Home, "work"), k.ns, PVCName(user)),
	}
	if p.Status.StartTime != nil {
		srv.StartedAt = p.Status.StartTime.UTC().Truncate(time.Second)
	}
	scheme := "http"
	if p.Labels[backend.LabelTLS] == "true" {
		scheme = "https"
	}
	if kc.Ingress.Host != "" {
		if kc.Ingress.TLSSecret != "" {
			scheme = "https"
		}
		srv.URL = fmt.Sprintf("%s://%s.%s/", scheme, user, kc.Ingress.Host)
		return srv
	}
	if svc == nil {
		return srv
	}
	host := k.nodeAddress()
	for _, sp := range svc.Spec.Ports {
		if sp.NodePort == 0 {
			continue
		}
		hp := net.JoinHostPort(host, strconv.Itoa(int(sp.NodePort)))
		switch sp.Name {
		case frontName:
			srv.URL = fmt.Sprintf("%s://%s/", scheme, hp)
		case healthName:
			srv.HealthURL = "http://" + hp + "/healthz"
		}
	}
	return srv
}

// nodeAddress is the host a person reaches NodePorts on:
// kubernetes.node_address, else the API server's host.
func (k *Kubernetes) nodeAddress() string {
	if a := k.cfg.Kubernetes.NodeAddress; a != "" {
		return a
	}
	if u, err := url.Parse(k.rest.Host); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	if name, err := os.Hostname(); err == nil {
		return name
	}
	return "127.0.0.1"
}
