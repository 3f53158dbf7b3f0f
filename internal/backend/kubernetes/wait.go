package kubernetes

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
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

// watchedTick is how often waitReady reads the pod itself while a watch
// brings its changes: only in case the watch missed one.
const watchedTick = 5 * time.Second

// waitReady follows user's pod until its agent says Jupyter is ready,
// reporting the pod's events, and fails fast when it cannot become ready.
//
// The pod's changes and its events come from two watches, so a starting
// pod costs the API server no request of its own until something changes
// (ten ups at once listing events and reading the pod twice a second each
// took the API server and etcd 8 s of processor time while their Jupyters
// started). A Get every watchedTick catches what a watch missed; without a
// watch (one the API server ended, or a Role without watch on events) up
// reads the pod, and lists its events, every progressTick instead. Once
// the main container runs, the agent's /readyz is asked through the
// Service every readyTick. The Service publishes the pod before the
// kubelet's readiness probe passes, so `up` returns as soon as Jupyter
// answers, not at the probe's next period. Behind an Ingress (no address
// of the Service reachable from here) the kubelet's Ready condition
// decides.
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
	var events <-chan watch.Event // the pod's events, once its UID is known
	var eventsOf types.UID
	stopEvents := func() {}
	defer func() { stopEvents() }()

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
				check.Reset(0)
				continue
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted {
				continue // a Deleted pod is reported by the next Get
			}
			pod = p
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if e, isEvent := ev.Object.(*corev1.Event); isEvent && ev.Type != watch.Deleted {
				reportEvent(e, seen, progress)
			}
			continue
		case <-check.C:
			p, err := k.pod(ctx, user)
			if err != nil {
				return backend.Server{}, err
			}
			if p == nil {
				return backend.Server{}, fmt.Errorf("the server did not start: pod %s is gone (deleted by someone else?)", PodName(user))
			}
			pod = p
			if changes != nil {
				check.Reset(watchedTick)
			} else {
				check.Reset(progressTick)
			}
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

		if pod.UID != "" && pod.UID != eventsOf {
			eventsOf = pod.UID
			stopEvents()
			events, stopEvents = k.watchEvents(ctx, pod.UID)
		}
		if events == nil {
			k.reportEvents(ctx, pod, seen, progress)
		}
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

// watchEvents watches the events of the object with uid, from the ones
// already there; with no watch (a Role without watch on events) it
// returns a nil channel, and the caller lists them.
func (k *Kubernetes) watchEvents(ctx context.Context, uid types.UID) (<-chan watch.Event, func()) {
	w, err := k.cs.CoreV1().Events(k.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(uid)})
	if err != nil {
		k.log.Debug("watch the pod's events; listing them instead", "err", err)
		return nil, func() {}
	}
	return w.ResultChan(), w.Stop
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

func phase(p *corev1.Pod) string {
	if p.Status.Phase == "" {
		return "pending"
	}
	return strings.ToLower(string(p.Status.Phase))
}

// reportEvents passes on the pod's and its claim's new events: scheduling,
// pulling, starting.
func (k *Kubernetes) reportEvents(ctx context.Context, pod *corev1.Pod, seen map[string]bool, progress func(backend.Event)) {
	evs, err := k.cs.CoreV1().Events(k.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pod.UID)})
	if err != nil {
		return
	}
	sort.Slice(evs.Items, func(i, j int) bool { return evTime(&evs.Items[i]).Before(evTime(&evs.Items[j])) })
	for i := range evs.Items {
		reportEvent(&evs.Items[i], seen, progress)
	}
}

// reportEvent passes e on unless seen (each event once per count).
func reportEvent(e *corev1.Event, seen map[string]bool, progress func(backend.Event)) {
	key := string(e.UID) + "/" + strconv.Itoa(int(e.Count))
	if seen[key] {
		return
	}
	seen[key] = true
	progress(backend.Event{Message: fmt.Sprintf("%s: %s", e.Reason, e.Message)})
}

func evTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// pvcBindGrace is how long a workspace claim may stay unbound, with a
// warning from the cluster, before Up gives up on it.
const pvcBindGrace = 15 * time.Second

// claimWait says whether the scheduler's reason is the workspace claim:
// unbound yet, or not yet seen (the scheduler's cache of claims may lag
// the claim made just before the pod, and its message then says
// `persistentvolumeclaim "NAME" not found`). Both pass once the scheduler
// catches up, so neither is a node short of room.
func claimWait(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "unbound") || strings.Contains(msg, "persistentvolumeclaim")
}

// stuck says why pod cannot become ready, or "" while it may still.
func (k *Kubernetes) stuck(ctx context.Context, pod *corev1.Pod, waited time.Duration) string {
	user := pod.Labels[backend.LabelUser]
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		return podEnd(pod) + k.logHint(ctx, pod)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			if claimWait(c.Message) {
				if msg := k.unboundClaim(ctx, user, waited); msg != "" {
					return msg
				}
				continue
			}
			return fmt.Sprintf("no node can run it: %s (choose a smaller size, or ask for nodes with what is short)", c.Message)
		}
	}
	if msg := k.unboundClaim(ctx, user, waited); msg != "" {
		return msg
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, s := range statuses {
		if w := s.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return fmt.Sprintf("the image %s cannot be pulled (%s): %s; check the image name (config key %s) and that the cluster may pull it", s.Image, w.Reason, w.Message, imageKey(s.Name))
			case "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff":
				return fmt.Sprintf("container %s cannot start (%s): %s", s.Name, w.Reason, w.Message)
			}
		}
		if t := s.State.Terminated; t != nil && (s.Name == mainName || t.ExitCode != 0) {
			return fmt.Sprintf("container %s exited (%s)%s", s.Name, termDetail(t), k.logHint(ctx, pod))
		}
	}
	return ""
}

func imageKey(container string) string {
	if container == initName {
		return "kubernetes.agent_image"
	}
	return "image"
}

// unboundClaim says why user's workspace claim does not bind, once it has
// waited pvcBindGrace with a warning from the cluster, else "".
func (k *Kubernetes) unboundClaim(ctx context.Context, user string, waited time.Duration) string {
	if waited < pvcBindGrace {
		return "" // no call to the API server on each change of a starting pod
	}
	pvc, err := k.cs.CoreV1().PersistentVolumeClaims(k.ns).Get(ctx, PVCName(user), metav1.GetOptions{})
	if err != nil || pvc.Status.Phase == corev1.ClaimBound {
		return ""
	}
	evs, err := k.cs.CoreV1().Events(k.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pvc.UID)})
	if err != nil {
		return ""
	}
	for _, e := range evs.Items {
		if e.Type == corev1.EventTypeWarning {
			return fmt.Sprintf("the workspace volume claim %s does not bind (%s: %s); check kubernetes.storage_class and that the cluster can provision volumes", pvc.Name, e.Reason, e.Message)
		}
	}
	return ""
}

// logHint is the agent's own error from the log's tail, when it wrote one.
func (k *Kubernetes) logHint(ctx context.Context, pod *corev1.Pod) string {
	tail := int64(40)
	data, err := k.cs.CoreV1().Pods(k.ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: mainName, TailLines: &tail}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	if msg := backend.AgentError(string(data)); msg != "" {
		return ": " + msg
	}
	return ""
}

func termDetail(t *corev1.ContainerStateTerminated) string {
	if t.Reason == "OOMKilled" {
		return "out of memory; choose a larger size"
	}
	if t.Reason != "" && t.Reason != "Completed" && t.Reason != "Error" {
		return fmt.Sprintf("%s, exit code %d", t.Reason, t.ExitCode)
	}
	return fmt.Sprintf("exit code %d", t.ExitCode)
}

// podEnd says how an ended pod ended.
func podEnd(p *corev1.Pod) string {
	for _, s := range p.Status.ContainerStatuses {
		if t := s.State.Terminated; t != nil {
			return "container " + s.Name + ": " + termDetail(t)
		}
	}
	if p.Status.Message != "" {
		return p.Status.Message
	}
	return phase(p)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
