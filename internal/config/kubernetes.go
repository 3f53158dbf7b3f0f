package config

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
)

// Kubernetes configures backend kubernetes: each server is a Pod on a
// cluster, running the image given by the top-level key image unmodified,
// with spinbook's agent put in by an init container (see docs/kubernetes.md).
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file to use (absolute or ~/...).
	// Default: $KUBECONFIG, else
	// ~/.kube/config, else the in-cluster configuration (spinbook running
	// in a pod).
	Kubeconfig string `yaml:"kubeconfig"`
	// Namespace is where servers and their volumes live; it must exist.
	// Default: default.
	Namespace string `yaml:"namespace"`
	// AgentImage is the tiny image that holds only the static spinbook
	// binary (deploy/agent-image); an init container copies it into each
	// server's pod. Required with backend kubernetes.
	AgentImage string `yaml:"agent_image"`
	// StorageClass is the StorageClass of workspace volumes. Default: the
	// cluster's default class.
	StorageClass string `yaml:"storage_class"`
	// WorkspaceSize is the size of a workspace volume when the server's size
	// gives none (sizes.NAME.storage), in spinbook's units (10GiB) or as a
	// Kubernetes quantity (10Gi, 500Mi, 10G). Default: 10GiB.
	WorkspaceSize string `yaml:"workspace_size"`
	// Home is the home directory of the image's user; the workspace is
	// mounted at HOME/work. Default: /home/jovyan (Jupyter docker-stacks).
	Home string `yaml:"home"`
	// UID and GID own the workspace volume (the image's user). Default:
	// 1000 and 100 (jovyan:users in the docker-stacks images).
	UID int `yaml:"uid"`
	GID int `yaml:"gid"`
	// NodeAddress is the host in a server's URL when it is reached on a
	// NodePort (no ingress). Default: the API server's host.
	NodeAddress string `yaml:"node_address"`
	// StopGrace is how long a server has to save the workspace and stop its
	// kernels on `spinbook down` before the kubelet kills it. Default: 60s.
	StopGrace string `yaml:"stop_grace"`
	// Ingress, when Host is set, puts an Ingress in front of each server
	// (its Service is then a ClusterIP); else the Service is a NodePort.
	Ingress KubernetesIngress `yaml:"ingress"`
	// PodCIDRs is the cluster's pod network. Each server's NetworkPolicy
	// keeps its ports from these addresses (but the ingress controller's
	// pods), and `up` warns when access.trusted_proxies covers them.
	// Default: the nodes' spec.podCIDRs (needs nodes: list); give it where
	// the CNI does not use them (Calico IPAM, AWS VPC CNI).
	PodCIDRs []string `yaml:"pod_cidrs"`

	// The fields above parsed; filled by Validate.
	WorkspaceBytes    int64          `yaml:"-"`
	StopGraceDuration time.Duration  `yaml:"-"`
	PodPrefixes       []netip.Prefix `yaml:"-"`
}

// KubernetesIngress is the Ingress in front of each server: USER.HOST, so
// that each server has its own origin (cookies, websockets).
type KubernetesIngress struct {
	// Class is the IngressClass, such as nginx. Default: the cluster's.
	Class string `yaml:"class"`
	// Host is the domain servers live under: user ada gets ada.HOST.
	// Point a wildcard DNS record *.HOST at the ingress controller.
	Host string `yaml:"host"`
	// TLSSecret is a Secret of type kubernetes.io/tls in the namespace with
	// a certificate for *.HOST; TLS then ends at the ingress.
	TLSSecret string `yaml:"tls_secret"`
	// ControllerSelector names the ingress controller's pods: the only
	// pods each server's NetworkPolicy lets reach the front door, and the
	// only ones to list in access.trusted_proxies. Default: ingress-nginx.
	ControllerSelector IngressControllerSelector `yaml:"controller_selector"`
}

// IngressControllerSelector selects the ingress controller's pods.
type IngressControllerSelector struct {
	// Namespace is the controller's namespace (matched by its
	// kubernetes.io/metadata.name label). Default: ingress-nginx.
	Namespace string `yaml:"namespace"`
	// PodLabels are labels every controller pod has. Default:
	// app.kubernetes.io/name: ingress-nginx and
	// app.kubernetes.io/component: controller (the ingress-nginx chart).
	PodLabels map[string]string `yaml:"pod_labels"`
}

// A Toleration lets a server's pod onto nodes with a matching taint
// (sizes.NAME.tolerations), as in a pod spec.
type Toleration struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"` // Equal (default) or Exists
	Value    string `yaml:"value"`
	Effect   string `yaml:"effect"` // NoSchedule, PreferNoSchedule, NoExecute; "" all
}

// DefaultControllerLabels are the pod labels of ingress-nginx's controller,
// as its Helm chart and manifests set them.
func DefaultControllerLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
}

// Defaults of the kubernetes keys.
const (
	defaultControllerNamespace = "ingress-nginx"
	defaultNamespace           = "default"
	defaultWorkspaceSize       = "10GiB"
	defaultK8sHome             = "/home/jovyan"
	defaultK8sUID              = 1000
	defaultK8sGID              = 100
)

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

func (v *validation) kubernetes() {
	k := &v.c.Kubernetes
	if k.Kubeconfig != "" {
		if p, msg := expandFile(k.Kubeconfig); msg != "" {
			v.problemf("kubernetes.kubeconfig", "%q: %s", k.Kubeconfig, msg)
		} else {
			k.Kubeconfig = p
		}
	}
	if k.Namespace == "" {
		k.Namespace = defaultNamespace
	} else if !dnsLabelRE.MatchString(k.Namespace) {
		v.problemf("kubernetes.namespace", "%q is not a namespace name: lowercase letters, digits and -", k.Namespace)
	}
	if k.AgentImage != "" && (strings.ContainsAny(k.AgentImage, " \t\n") || strings.HasPrefix(k.AgentImage, "-")) {
		v.problemf("kubernetes.agent_image", "%q is not an image reference (example: registry.example.com/spinbook-agent:1.0.0)", k.AgentImage)
	} else if k.AgentImage == "" && v.c.Backend == "kubernetes" {
		v.problemf("kubernetes.agent_image", "required with backend kubernetes: the image holding the spinbook binary (build it from deploy/agent-image, see docs/kubernetes.md)")
	}
	if k.StorageClass != "" && !dnsSubdomainRE.MatchString(k.StorageClass) {
		v.problemf("kubernetes.storage_class", "%q is not a StorageClass name", k.StorageClass)
	}
	if k.WorkspaceSize == "" {
		k.WorkspaceSize = defaultWorkspaceSize
	}
	if n, msg := parseStorage(k.WorkspaceSize); msg != "" {
		v.problemf("kubernetes.workspace_size", "%q: %s", k.WorkspaceSize, msg)
	} else {
		k.WorkspaceBytes = n
	}
	if k.Home == "" {
		k.Home = defaultK8sHome
	} else if !strings.HasPrefix(k.Home, "/") {
		v.problemf("kubernetes.home", "%q is not an absolute path", k.Home)
	}
	if k.UID == 0 {
		k.UID = defaultK8sUID
	}
	if k.GID == 0 {
		k.GID = defaultK8sGID
	}
	if k.UID < 0 || k.GID < 0 {
		v.problemf("kubernetes.uid", "uid %d and gid %d: want the numeric ids of the image's user", k.UID, k.GID)
	}
	if k.NodeAddress != "" && strings.ContainsAny(k.NodeAddress, " /:\t") && !isIP(k.NodeAddress) {
		v.problemf("kubernetes.node_address", "%q is not a host name or IP address", k.NodeAddress)
	}
	k.StopGraceDuration = defaultStopGrace
	if k.StopGrace == "" {
		k.StopGrace = "60s"
	} else if g, err := time.ParseDuration(k.StopGrace); err != nil {
		v.problemf("kubernetes.stop_grace", "%q is not a duration (examples: 60s, 2m)", k.StopGrace)
	} else if g < time.Second {
		v.problemf("kubernetes.stop_grace", "%q is too short to save the workspace; give at least 1s", k.StopGrace)
	} else {
		k.StopGraceDuration = g
	}
	in := k.Ingress
	if in.Class != "" && !dnsSubdomainRE.MatchString(in.Class) {
		v.problemf("kubernetes.ingress.class", "%q is not an IngressClass name", in.Class)
	}
	if in.Host != "" && (!dnsSubdomainRE.MatchString(in.Host) || !strings.Contains(in.Host, ".")) {
		v.problemf("kubernetes.ingress.host", "%q is not a domain (example: notebooks.example.com; user ada gets ada.notebooks.example.com)", in.Host)
	}
	if in.TLSSecret != "" && !dnsSubdomainRE.MatchString(in.TLSSecret) {
		v.problemf("kubernetes.ingress.tls_secret", "%q is not a Secret name", in.TLSSecret)
	}
	cs := &k.Ingress.ControllerSelector
	if cs.Namespace == "" {
		cs.Namespace = defaultControllerNamespace
	} else if !dnsLabelRE.MatchString(cs.Namespace) {
		v.problemf("kubernetes.ingress.controller_selector.namespace", "%q is not a namespace name: lowercase letters, digits and -", cs.Namespace)
	}
	if len(cs.PodLabels) == 0 {
		cs.PodLabels = DefaultControllerLabels()
	}
	for _, key := range slices.Sorted(maps.Keys(cs.PodLabels)) {
		val := cs.PodLabels[key]
		if errs := k8svalidation.IsQualifiedName(key); len(errs) > 0 {
			v.problemf("kubernetes.ingress.controller_selector.pod_labels", "%q is not a label name: %s", key, errs[0])
		} else if errs := k8svalidation.IsValidLabelValue(val); len(errs) > 0 {
			v.problemf("kubernetes.ingress.controller_selector.pod_labels", "%s: %q is not a label value: %s", key, val, errs[0])
		}
	}
	k.PodPrefixes = nil
	for _, c := range k.PodCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			v.problemf("kubernetes.pod_cidrs", "%q is not a CIDR (example: 10.244.0.0/16)", c)
			continue
		}
		k.PodPrefixes = append(k.PodPrefixes, p.Masked())
	}
	if in.Host == "" && (in.Class != "" || in.TLSSecret != "") {
		v.problemf("kubernetes.ingress.host", "required when kubernetes.ingress has class or tls_secret: the domain servers live under")
	}
	if in.Host != "" && in.TLSSecret == "" && v.c.Backend == "kubernetes" && !v.c.Access.InsecureHTTP {
		v.missing("kubernetes.ingress.tls_secret", "required with ingress.host: without it the ingress serves plain HTTP, so passwords and session cookies would cross the network in clear; name a kubernetes.io/tls Secret (see docs/kubernetes.md), or set access.insecure_http: true to accept that")
	}
	if in.TLSSecret != "" && v.c.Backend == "kubernetes" && v.c.Access.TLS.Enabled() {
		v.problemf("access.tls", "with kubernetes.ingress.tls_secret, TLS ends at the ingress: leave access.tls empty")
	}
}

// sizeKubernetes checks the keys of size s only the kubernetes backend reads.
func (v *validation) sizeKubernetes(p string, s *Size) {
	if s.Storage != "" {
		n, msg := parseStorage(s.Storage)
		if msg != "" {
			v.problemf(p+".storage", "%q: %s", s.Storage, msg)
		}
		s.StorageBytes = n
	}
	if s.GPUCount == -1 && v.c.Backend == "kubernetes" {
		v.problemf(p+".gpus", "with backend kubernetes, give a number of GPUs (the pod requests nvidia.com/gpu), not \"all\"")
	}
	for k, val := range s.NodeSelector {
		if k == "" || strings.ContainsAny(k, " \t\n") || strings.ContainsAny(val, " \t\n") {
			v.problemf(p+".node_selector", "%q: %q is not a node label", k, val)
		}
	}
	for i, t := range s.Tolerations {
		tp := fmt.Sprintf("%s.tolerations[%d]", p, i)
		switch t.Operator {
		case "", "Equal":
			if t.Key == "" {
				v.problemf(tp, "operator Equal needs a key")
			}
		case "Exists":
			if t.Value != "" {
				v.problemf(tp, "operator Exists takes no value")
			}
		default:
			v.problemf(tp+".operator", "%q: want Equal or Exists", t.Operator)
		}
		switch t.Effect {
		case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			v.problemf(tp+".effect", "%q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
		}
	}
}

// parseStorage parses a volume size: spinbook's own notation (10GiB,
// 1.5TiB, as for memory) or a Kubernetes quantity, which is what people
// who write PersistentVolumeClaims type: binary 10Gi, 500Mi, or decimal
// 10G (10^9 bytes), 500M. A number alone, which Kubernetes reads as
// bytes, and the milli suffix m are refused as surely not meant.
func parseStorage(s string) (int64, string) {
	const form = "want a size such as 10GiB, or as in Kubernetes 10Gi or 10G (units: KiB, MiB, GiB, TiB; Ki, Mi, Gi, Ti; k, M, G, T)"
	if n, msg := parseBytes(s); msg == "" || strings.HasPrefix(msg, "more than") {
		return n, msg
	}
	t := strings.TrimSpace(s)
	if t == "" || strings.Trim(t, "0123456789.") == "" {
		return 0, form + "; a number alone would be bytes: give a unit"
	}
	if strings.HasSuffix(t, "m") {
		return 0, form + "; m is a thousandth; did you mean " + strings.TrimSuffix(t, "m") + "M?"
	}
	q, err := resource.ParseQuantity(t)
	if err != nil {
		return 0, form
	}
	if q.Sign() <= 0 {
		return 0, form
	}
	if q.Cmp(resource.MustParse("1Pi")) > 0 {
		return 0, "more than a PiB; check the unit"
	}
	n := q.Value() // rounded up to a whole byte
	if q.Cmp(*resource.NewQuantity(n, resource.BinarySI)) != 0 {
		return 0, form + "; a whole number of bytes"
	}
	return n, ""
}
