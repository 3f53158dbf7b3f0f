package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// prepare makes what user's pod needs before it is created: the workspace
// claim, the Service, the Secret with the agent spec, and the Ingress.
// None of them needs another, so they are made at once: the pod waits for
// the slowest call, not for all of them one after another, and the agent
// spec is taken as late as can be (a generated password's hash may still
// be computing) while the others are made. Any failure stops up before the
// pod is created.
func (k *Kubernetes) prepare(ctx context.Context, spec backend.Spec, size config.Size, cn clusterNet, progress func(backend.Event)) (*corev1.Service, backend.AgentSpec, error) {
	user := spec.User
	var svc *corev1.Service
	var as backend.AgentSpec
	var pvcErr, svcErr, secretErr, ingressErr error
	var wg sync.WaitGroup
	wg.Go(func() { pvcErr = k.ensurePVC(ctx, user, size, progress) })
	wg.Go(func() { svc, svcErr = k.ensureService(ctx, user) })
	wg.Go(func() {
		if as, secretErr = k.agentSpec(spec, cn); secretErr == nil {
			secretErr = k.putSecret(ctx, user, as)
		}
	})
	wg.Go(func() { ingressErr = k.ensureIngress(ctx, user) })
	wg.Wait()
	if err := errors.Join(pvcErr, svcErr, secretErr, ingressErr); err != nil {
		return nil, as, err
	}
	return svc, as, nil
}

// putSecret creates or replaces user's Secret with the spec and its token.
func (k *Kubernetes) putSecret(ctx context.Context, user string, as backend.AgentSpec) error {
	data, err := json.Marshal(as)
	if err != nil {
		return fmt.Errorf("encode agent spec: %w", err)
	}
	s := &corev1.Secret{
		ObjectMeta: k.meta(user),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{specKey: data, tokenKey: []byte(as.ControlToken)},
	}
	secrets := k.cs.CoreV1().Secrets(k.ns)
	if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err == nil {
		return nil
	} else if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create secret %s: %w", s.Name, err)
	}
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update secret %s: %w", s.Name, err)
	}
	return nil
}

// controlToken reads back the control token of user's server, or "".
func (k *Kubernetes) controlToken(ctx context.Context, user string) string {
	s, err := k.cs.CoreV1().Secrets(k.ns).Get(ctx, PodName(user), metav1.GetOptions{})
	if err != nil {
		k.log.Debug("no control token", "user", user, "err", err)
		return ""
	}
	return string(s.Data[tokenKey])
}

// ensurePVC creates user's workspace claim unless it exists.
func (k *Kubernetes) ensurePVC(ctx context.Context, user string, size config.Size, progress func(backend.Event)) error {
	pvcs := k.cs.CoreV1().PersistentVolumeClaims(k.ns)
	if _, err := pvcs.Get(ctx, PVCName(user), metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get workspace claim %s: %w", PVCName(user), k.explain(err))
	}
	bytes := k.cfg.Kubernetes.WorkspaceBytes
	if size.StorageBytes > 0 {
		bytes = size.StorageBytes
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: PVCName(user), Namespace: k.ns, Labels: labels(user)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(bytes, resource.BinarySI),
			}},
		},
	}
	if sc := k.cfg.Kubernetes.StorageClass; sc != "" {
		pvc.Spec.StorageClassName = &sc
	}
	progress(backend.Event{Message: fmt.Sprintf("creating the workspace volume claim %s (%s)", PVCName(user), pvc.Spec.Resources.Requests.Storage())})
	if _, err := pvcs.Create(ctx, pvc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create workspace claim %s: %w", PVCName(user), err)
	}
	return nil
}

// ensureService creates user's Service unless it exists: a NodePort, or a
// ClusterIP behind the Ingress.
func (k *Kubernetes) ensureService(ctx context.Context, user string) (*corev1.Service, error) {
	svcs := k.cs.CoreV1().Services(k.ns)
	if s, err := svcs.Get(ctx, PodName(user), metav1.GetOptions{}); err == nil {
		return s, nil
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get service %s: %w", PodName(user), k.explain(err))
	}
	s := &corev1.Service{
		ObjectMeta: k.meta(user),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels(user),
			Ports: []corev1.ServicePort{
				{Name: frontName, Port: frontPort, TargetPort: intstr.FromString(frontName)},
				{Name: healthName, Port: healthPort, TargetPort: intstr.FromString(healthName)},
			},
			// The agent sees the client's own address, for access.allow.
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			// The pod is reachable from when it has an address, before the
			// kubelet's readiness probe passes: the agent is the front door
			// from its first moment (a login page, Jupyter's starting), and
			// up asks its /readyz itself instead of waiting a probe period.
			PublishNotReadyAddresses: true,
		},
	}
	if k.cfg.Kubernetes.Ingress.Host != "" {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.ExternalTrafficPolicy = ""
	}
	out, err := svcs.Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another up of the same user made it since the Get: use theirs.
		if out, err = svcs.Get(ctx, s.Name, metav1.GetOptions{}); err == nil {
			return out, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create service %s: %w", s.Name, err)
	}
	return out, nil
}

// ensureIngress creates user's Ingress, USER.HOST, when one is configured.
func (k *Kubernetes) ensureIngress(ctx context.Context, user string) error {
	in := k.cfg.Kubernetes.Ingress
	if in.Host == "" {
		return nil
	}
	host := user + "." + in.Host
	pathType := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: k.meta(user),
		Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &pathType,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: PodName(user), Port: networkingv1.ServiceBackendPort{Name: frontName},
						}},
					}},
				}},
			}},
		},
	}
	if in.Class != "" {
		ing.Spec.IngressClassName = &in.Class
	}
	if in.TLSSecret != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: in.TLSSecret}}
	}
	_, err := k.cs.NetworkingV1().Ingresses(k.ns).Create(ctx, ing, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ingress %s: %w", ing.Name, err)
	}
	return nil
}
