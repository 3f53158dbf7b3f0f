package kubernetes

import (
	"fmt"
	"path"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// podSpec is the Pod the backend creates for spec.
func podSpec(c *config.Config, spec backend.Spec, size config.Size) *corev1.Pod {
	kc := c.Kubernetes
	user := spec.User
	lbl := labels(user)
	if spec.Size != "" {
		lbl[backend.LabelSize] = spec.Size
	}
	annot := map[string]string{}
	if spec.AccessDigest != "" {
		annot[annotDigest] = spec.AccessDigest
	}
	if spec.Agent.TLSCert != "" || spec.Agent.TLSSelfSigned {
		lbl[backend.LabelTLS] = "true"
	}
	workspace := path.Join(kc.Home, "work")
	grace := int64(podGrace(kc) / time.Second)
	no, yes := false, true
	root := int64(0)
	shm := resource.NewQuantity(defaultShm, resource.BinarySI)
	if size.ShmBytes > 0 {
		shm = resource.NewQuantity(size.ShmBytes, resource.BinarySI)
	}
	probe := func(p string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromString(healthName)}},
			PeriodSeconds:    period,
			TimeoutSeconds:   5,
			FailureThreshold: failures,
		}
	}
	var tolerations []corev1.Toleration
	for _, t := range size.Tolerations {
		tolerations = append(tolerations, corev1.Toleration{
			Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect),
		})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: PodName(user), Labels: lbl, Annotations: annot},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			// The sandbox's pause process is PID 1 and reaps the kernels' orphans.
			ShareProcessNamespace: &yes,
			SecurityContext:       &corev1.PodSecurityContext{FSGroup: ptr(int64(kc.GID))},
			NodeSelector:          size.NodeSelector,
			Tolerations:           tolerations,
			InitContainers: []corev1.Container{{
				Name:            initName,
				Image:           kc.AgentImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/spinbook", "agent", "stage",
					"--bin-dir", binDir, "--spec-from", secretDir + "/" + specKey, "--spec-to", specPath,
					"--workspace", workspace, "--owner", fmt.Sprintf("%d:%d", kc.UID, kc.GID)},
				SecurityContext: &corev1.SecurityContext{RunAsUser: &root, RunAsGroup: &root},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "agent", MountPath: binDir},
					{Name: "run", MountPath: runDir},
					{Name: "spec", MountPath: secretDir, ReadOnly: true},
					{Name: "work", MountPath: workspace},
				},
			}},
			Containers: []corev1.Container{{
				Name:            mainName,
				Image:           c.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{agentPath, "agent"},
				Args:            []string{},
				// Only where the spec is: the spec itself is a file.
				Env:        []corev1.EnvVar{{Name: "SPINBOOK_AGENT_SPEC", Value: specPath}},
				WorkingDir: kc.Home,
				Ports: []corev1.ContainerPort{
					{Name: frontName, ContainerPort: frontPort},
					{Name: healthName, ContainerPort: healthPort},
				},
				ReadinessProbe: probe("/readyz", 2, 3),
				LivenessProbe:  probe("/healthz", 10, 6),
				StartupProbe:   probe("/healthz", 2, 60),
				Resources:      resources(size),
				VolumeMounts: []corev1.VolumeMount{
					{Name: "agent", MountPath: binDir, ReadOnly: true},
					{Name: "run", MountPath: runDir},
					{Name: "work", MountPath: workspace},
					{Name: "shm", MountPath: "/dev/shm"},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "agent", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(16<<20, resource.BinarySI)}}},
				{Name: "spec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: PodName(user), DefaultMode: ptr(int32(0o400)),
					Items: []corev1.KeyToPath{{Key: specKey, Path: specKey}},
				}}},
				{Name: "work", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: PVCName(user)}}},
				{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: shm}}},
			},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// resources maps a size to requests and limits: CPUs and memory are both
// (a server gets what it may use), GPUs are nvidia.com/gpu.
func resources(size config.Size) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{}
	set := func(name corev1.ResourceName, q resource.Quantity) {
		if r.Limits == nil {
			r.Limits, r.Requests = corev1.ResourceList{}, corev1.ResourceList{}
		}
		r.Limits[name], r.Requests[name] = q, q
	}
	if size.NanoCPUs > 0 {
		set(corev1.ResourceCPU, *resource.NewMilliQuantity(size.NanoCPUs/1e6, resource.DecimalSI))
	}
	if size.MemoryBytes > 0 {
		set(corev1.ResourceMemory, *resource.NewQuantity(size.MemoryBytes, resource.BinarySI))
	}
	if size.GPUCount > 0 {
		set("nvidia.com/gpu", *resource.NewQuantity(int64(size.GPUCount), resource.DecimalSI))
	}
	return r
}
