package kubernetes

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/spinbook/spinbook/internal/backend"
)

// readyTick is how often Up asks a running pod's agent whether Jupyter is
// ready, and readyTimeout how long one asking may take: a NodePort whose
// endpoint is not programmed yet drops the connection rather than refusing
// it.
const (
	readyTick    = 20 * time.Millisecond
	readyTimeout = 500 * time.Millisecond
)

// waitReady follows user's pod until its agent says Jupyter is ready,
// reporting the pod's events, and fails fast when it cannot become ready.
//
// The pod's changes come from a watch (a Get every progressTick too, for
// a watch the API server ends); once its main container runs, the agent's
// /readyz is asked through the Service every readyTick. The Service
// publishes the pod before the kubelet's readiness probe passes, so `up`
// returns as soon as Jupyter answers, not at the probe's next period.
// Behind an Ingress (no address of the Service reachable from here) the
// kubelet's Ready condition decides.
func (k *Kubernetes) waitReady(ctx context.Context, user string, progress func(backend.Event)) (backend.Server, error) {
	began := time.Now()
	seen := map[string]bool{}
	nextNote := began.Add(5 * time.Second)
	hc := &http.Client{Timeout: readyTimeout}
	defer hc.CloseIdleConnections()

	var changes <-chan watch.Event
	w, err := k.cs.CoreV1().Pods(k.ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", PodName(user)).String()})
	if err != nil {
		k.log.Debug("watch the pod; polling it instead", "err", err)
	} else {
		defer w.Stop()
		changes = w.ResultChan()
	}

	var srv *backend.Server // described once the main container runs
	check := time.NewTimer(0)
	defer check.Stop()
	var probe <-chan time.Time
	for {
		var pod *corev1.Pod
		select {
		case <-ctx.Done():
			return backend.Server{}, fmt.Errorf("wait for the server: %w", context.Cause(ctx))
		case ev, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted {
				continue // a Deleted pod is reported by the next Get
			}
			pod = p
		case <-check.C:
			p, err := k.pod(ctx, user)
			if err != nil {
				return backend.Server{}, err
			}
			if p == nil {
				return backend.Server{}, fmt.Errorf("the server did not start: pod %s is gone (deleted by someone else?)", PodName(user))
			}
			pod = p
			check.Reset(progressTick)
			if time.Now().After(nextNote) {
				progress(backend.Event{Message: fmt.Sprintf("waiting for the server (%s, pod %s)", time.Since(began).Round(time.Second), phase(pod))})
				nextNote = time.Now().Add(10 * time.Second)
			}
		case <-probe:
			if backend.Ready(hc, strings.TrimSuffix(srv.HealthURL, "/healthz")) {
				return ready(*srv)
			}
			probe = time.After(readyTick)
			continue
		}

		k.reportEvents(ctx, pod, seen, progress)
		if msg := k.stuck(ctx, pod, time.Since(began)); msg != "" {
			return backend.Server{}, fmt.Errorf("the server did not start: %s", msg)
		}
		if srv == nil && mainRunning(pod) {
			s := k.describe(ctx, pod)
			srv = &s
			if srv.HealthURL != "" && probe == nil {
				probe = time.After(0)
			}
		}
		if podReady(pod) {
			s := k.describe(ctx, pod)
			if s.HealthURL == "" || backend.Ready(hc, strings.TrimSuffix(s.HealthURL, "/healthz")) {
				return ready(s)
			}
		}
	}
}

// agentReady asks the agent behind healthURL (…/healthz) whether Jupyter
// is ready.
func agentReady(healthURL string) bool {
	hc := &http.Client{Timeout: readyTimeout}
	defer hc.CloseIdleConnections()
	return backend.Ready(hc, strings.TrimSuffix(healthURL, "/healthz"))
}

// ready is srv, ready.
func ready(srv backend.Server) (backend.Server, error) {
	srv.State, srv.Ready, srv.Detail = backend.Running, true, ""
	return srv, nil
}

// mainRunning: the pod's main container (the agent) has started.
func mainRunning(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == mainName && s.State.Running != nil {
			return true
		}
	}
	return false
}
