package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/spinbook/spinbook/internal/config"
)

// Each server's NetworkPolicy (issue 14, finding 2). The agent believes
// X-Forwarded-For from access.trusted_proxies only; on a cluster those are
// the ingress controller's pods. Without a policy every pod — another
// user's kernel among them — reaches the front door directly and, when
// trusted_proxies covers it, forges its address past access.allow and the
// per-client login limiter. So the policy admits on the front door:
//
//   - with an Ingress: the ingress controller's pods only
//     (kubernetes.ingress.controller_selector);
//   - with a NodePort (externalTrafficPolicy Local keeps a client's own
//     address, which access.allow then checks): every address but the pod
//     network's, and the nodes (kube-proxy's masquerade of a node's own
//     clients arrives from the node's pod network gateway).
//
// The health port (/healthz, /readyz; no secrets) is for the kubelet's
// probes, from the node, and with a NodePort also for `spinbook up` and
// `status` wherever they run: with an Ingress it admits the nodes, with a
// NodePort the same sources as the front door. Egress is not restricted:
// kernels reach package indexes, git remotes and the warehouse.

// clusterNet is what the policy needs to know of the cluster.
type clusterNet struct {
	// Pods is the pod network: kubernetes.pod_cidrs, else every node's
	// spec.podCIDRs. Empty when neither says (then pods cannot be told
	// apart by address).
	Pods []netip.Prefix
	// Nodes are the nodes' own addresses (InternalIP, ExternalIP) and
	// their pod network gateways (the first address of each node's pod
	// CIDR, where a node's traffic into its pods comes from).
	Nodes []netip.Addr
	// Gateways are the nodes' pod network gateways alone, which the
	// agent's allowlist admits for clients on a node (allowWithNodes).
	Gateways []netip.Addr
}

// clusterNet reads the pod network and the nodes' addresses. Listing nodes
// needs a ClusterRole (nodes: list); without it the nodes are unknown and
// the pod network is what kubernetes.pod_cidrs says.
func (k *Kubernetes) clusterNet(ctx context.Context) clusterNet {
	var cn clusterNet
	cn.Pods = append(cn.Pods, k.cfg.Kubernetes.PodPrefixes...)
	nodes, err := k.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		k.log.Debug("list nodes for the network policy", "err", err)
		return cn
	}
	fromConfig := len(cn.Pods) > 0
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				cn.Nodes = append(cn.Nodes, ip.Unmap())
			}
		}
		for _, c := range nodePodCIDRs(&n) {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				continue
			}
			p = p.Masked()
			cn.Nodes = append(cn.Nodes, p.Addr().Next())
			cn.Gateways = append(cn.Gateways, p.Addr().Next())
			if !fromConfig {
				cn.Pods = append(cn.Pods, p)
			}
		}
	}
	cn.Pods = sortedUnique(cn.Pods, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	cn.Nodes = sortedUnique(cn.Nodes, netip.Addr.Compare)
	cn.Gateways = sortedUnique(cn.Gateways, netip.Addr.Compare)
	return cn
}

func nodePodCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

func sortedUnique[T comparable](s []T, cmp func(a, b T) int) []T {
	slices.SortFunc(s, cmp)
	return slices.Compact(s)
}

// networkPolicy is user's NetworkPolicy, spinbook-USER, for c and cn.
func networkPolicy(c *config.Config, ns, user string, cn clusterNet) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := func(n int) []networkingv1.NetworkPolicyPort {
		p := intstr.FromInt32(int32(n))
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}}
	}
	var front, health []networkingv1.NetworkPolicyPeer
	if in := c.Kubernetes.Ingress; in.Host != "" {
		front = []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: in.ControllerSelector.Namespace}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: in.ControllerSelector.PodLabels},
		}}
		health = addrPeers(cn.Nodes)
		if len(health) == 0 {
			health = outsidePods(cn)
		}
	} else {
		front = outsidePods(cn)
		health = outsidePods(cn)
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PodName(user), Namespace: ns, Labels: labels(user)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: labels(user)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: port(frontPort), From: front},
				{Ports: port(healthPort), From: health},
			},
		},
	}
}

// outsidePods are the peers "every address but the pod network's, and the
// nodes". With no pod network known it is nil: every source.
func outsidePods(cn clusterNet) []networkingv1.NetworkPolicyPeer {
	if len(cn.Pods) == 0 {
		return nil
	}
	var v4, v6 []string
	for _, p := range cn.Pods {
		if p.Bits() == 0 {
			return nil // a "pod network" of everything: nothing to tell apart
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	// A family the pods have no address of cannot reach them anyway.
	var peers []networkingv1.NetworkPolicyPeer
	if len(v4) > 0 {
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: v4}})
	}
	if len(v6) > 0 {
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: v6}})
	}
	// Node addresses inside the pod network (each node's gateway) are
	// excepted above: admit them again.
	var inside []netip.Addr
	for _, a := range cn.Nodes {
		if slices.ContainsFunc(cn.Pods, func(p netip.Prefix) bool { return p.Contains(a) }) {
			inside = append(inside, a)
		}
	}
	return append(peers, addrPeers(inside)...)
}

// addrPeers admits each address alone.
func addrPeers(addrs []netip.Addr) []networkingv1.NetworkPolicyPeer {
	var peers []networkingv1.NetworkPolicyPeer
	for _, a := range addrs {
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(a, a.BitLen()).String()}})
	}
	return peers
}

// ensureNetworkPolicy creates user's NetworkPolicy, or brings it up to
// date (the nodes change), before the pod exists, so that the pod is never
// reachable without it. Two `up`s at once both get there: a create that
// finds the policy made, or an update that finds it changed, tries again.
func (k *Kubernetes) ensureNetworkPolicy(ctx context.Context, user string, cn clusterNet) error {
	want := networkPolicy(k.cfg, k.ns, user, cn)
	nps := k.cs.NetworkingV1().NetworkPolicies(k.ns)
	var err error
	for range 5 {
		var have *networkingv1.NetworkPolicy
		have, err = nps.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = nps.Create(ctx, want, metav1.CreateOptions{})
		case err != nil:
			return fmt.Errorf("get network policy %s: %w", want.Name, k.explainPolicy(err))
		case equality.Semantic.DeepEqual(have.Spec, want.Spec) && equality.Semantic.DeepEqual(have.Labels, want.Labels):
			return nil
		default:
			have.Labels = want.Labels
			have.Spec = want.Spec
			_, err = nps.Update(ctx, have, metav1.UpdateOptions{})
		}
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
			break
		}
	}
	return fmt.Errorf("make network policy %s: %w", want.Name, k.explainPolicy(err))
}

// explainPolicy says what a Role without networkpolicies lacks.
func (k *Kubernetes) explainPolicy(err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w (spinbook keeps other pods off each server's front door with a NetworkPolicy: grant networkpolicies get, create, update, delete in namespace %s; see docs/kubernetes.md)", err, k.ns)
	}
	return k.explain(err)
}

// proxyWarnings are what `up` says about access.trusted_proxies and the
// pod network: trusting the whole pod network lets every pod's
// X-Forwarded-For through wherever NetworkPolicy is not enforced, and not
// knowing the pod network leaves a NodePort front door open to every pod.
// Trusting a part of it (the pod CIDRs of nodes only the ingress
// controller runs on) is what the docs advise, and draws no warning.
func (k *Kubernetes) proxyWarnings(cn clusterNet) []string {
	var out []string
	var by []string
	all := len(cn.Pods) > 0
	for _, p := range cn.Pods {
		covered := false
		for _, t := range k.cfg.Access.TrustedPrefixes {
			if t.Bits() <= p.Bits() && t.Contains(p.Addr()) {
				covered = true
				if !slices.Contains(by, t.String()) {
					by = append(by, t.String())
				}
			}
		}
		all = all && covered
	}
	if all {
		pods := make([]string, len(cn.Pods))
		for i, p := range cn.Pods {
			pods[i] = p.String()
		}
		out = append(out, fmt.Sprintf("access.trusted_proxies %s covers the pod network %s: "+
			"only the NetworkPolicy keeps other pods (other users' kernels) from forging X-Forwarded-For past access.allow, "+
			"and a CNI that does not enforce NetworkPolicy lets them; list only the addresses the ingress controller's pods connect from, never the pod network (docs/kubernetes.md)",
			strings.Join(by, ", "), strings.Join(pods, ", ")))
	}
	if len(cn.Pods) == 0 && k.cfg.Kubernetes.Ingress.Host == "" {
		out = append(out, "the cluster's pod network is unknown (the nodes show no spec.podCIDRs, or spinbook may not list nodes): the NetworkPolicy cannot keep other pods off this NodePort front door; set kubernetes.pod_cidrs")
	}
	return out
}
