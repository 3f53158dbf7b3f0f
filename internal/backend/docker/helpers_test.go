package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

func TestAllowWithGateway(t *testing.T) {
	c := &container.InspectResponse{NetworkSettings: &container.NetworkSettings{
		Networks: map[string]*network.EndpointSettings{"spinbook": {Gateway: "172.20.0.1"}},
	}}
	tests := []struct {
		name  string
		allow []string
		want  []string
	}{
		{"loopback admits the Docker host", []string{"127.0.0.0/8", "::1/128"}, []string{"127.0.0.0/8", "::1/128", "172.20.0.1/32"}},
		{"single loopback address", []string{"127.0.0.1"}, []string{"127.0.0.1", "172.20.0.1/32"}},
		{"office only: no gateway", []string{"203.0.113.0/24"}, []string{"203.0.113.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, allowWithGateway(tt.allow, c)); diff != "" {
				t.Errorf("allowWithGateway (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPullProgressFailsOnTheStreamsError(t *testing.T) {
	stream := `{"status":"Pulling from jupyter/scipy-notebook","id":"latest"}
{"status":"Downloading","progressDetail":{"current":1048576,"total":4194304},"id":"a1"}
{"status":"Pull complete","id":"a1"}
{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}
`
	var events []string
	err := pullProgress(strings.NewReader(stream), func(ev backend.Event) { events = append(events, ev.Message) })
	if err == nil || err.Error() != "manifest unknown" {
		t.Errorf("pullProgress = %v, want the stream's error", err)
	}
	ok := `{"status":"Pull complete","id":"a1"}` + "\n"
	if err := pullProgress(strings.NewReader(ok), func(backend.Event) {}); err != nil {
		t.Errorf("pullProgress of a good stream = %v", err)
	}
}

func TestSizeMapsToResources(t *testing.T) {
	c := config.Default()
	c.Sizes = map[string]config.Size{
		"gpu": {CPUs: "8", Memory: "64GiB", GPUs: "2", Shm: "16GiB"},
		"all": {GPUs: "all"},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	_, host, _ := containerConfig(c, backend.Spec{User: "u", Size: "gpu"}, c.Sizes["gpu"], placement{Home: "/home/jovyan", Workspace: "/home/jovyan/work"})
	want := []container.DeviceRequest{{Driver: "nvidia", Count: 2, Capabilities: [][]string{{"gpu"}}}}
	if host.NanoCPUs != 8e9 || host.Memory != 64<<30 || host.ShmSize != 16<<30 || !cmp.Equal(host.DeviceRequests, want) {
		t.Errorf("gpu size: NanoCPUs %d, Memory %d, ShmSize %d, DeviceRequests %+v", host.NanoCPUs, host.Memory, host.ShmSize, host.DeviceRequests)
	}
	_, host, _ = containerConfig(c, backend.Spec{User: "u", Size: "all"}, c.Sizes["all"], placement{Workspace: "/w"})
	if len(host.DeviceRequests) != 1 || host.DeviceRequests[0].Count != -1 || host.NanoCPUs != 0 || host.Memory != 0 {
		t.Errorf("gpus: all = %+v, want one request for every GPU and no CPU or memory limit", host)
	}
	_, host, _ = containerConfig(c, backend.Spec{User: "u"}, config.Size{}, placement{Workspace: "/w"})
	if host.DeviceRequests != nil || host.NanoCPUs != 0 || host.Memory != 0 || host.ShmSize != 0 {
		t.Errorf("no size = %+v, want no limits", host.Resources)
	}
}

// A container another up created moments ago, and has not started yet, is
// that up in progress: a second up says to try again instead of removing
// it (which made the first up fail mid-start); an old one is a leftover.
func TestInFlight(t *testing.T) {
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	at := func(status container.ContainerState, age time.Duration) *container.InspectResponse {
		return &container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{
			Created: now.Add(-age).Format(time.RFC3339Nano),
			State:   &container.State{Status: status},
		}}
	}
	tests := []struct {
		name string
		c    *container.InspectResponse
		want bool
	}{
		{"created just now", at(container.StateCreated, 3*time.Second), true},
		{"created long ago", at(container.StateCreated, 10*time.Minute), false},
		{"exited", at(container.StateExited, 3*time.Second), false},
		{"dead", at(container.StateDead, time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := inFlight(tt.c, now); got != tt.want {
				t.Errorf("inFlight = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAgentSumKeptByIdentity: the agent's sum is its content's, read again
// whenever the file is another (here: rewritten with other bytes).
func TestAgentSumKeptByIdentity(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	p := filepath.Join(t.TempDir(), "spinbook-agent")
	sumOf := func() string {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, _ := f.Stat()
		s, err := agentSum(p, f, fi)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	os.WriteFile(p, []byte("agent one"), 0o755)
	want := sha256.Sum256([]byte("agent one"))
	if got := sumOf(); got != hex.EncodeToString(want[:]) {
		t.Fatalf("sum = %s, want the content's", got)
	}
	if got := sumOf(); got != hex.EncodeToString(want[:]) {
		t.Fatalf("kept sum = %s, want the content's", got)
	}
	os.Remove(p)
	os.WriteFile(p, []byte("agent number two"), 0o755)
	want = sha256.Sum256([]byte("agent number two"))
	if got := sumOf(); got != hex.EncodeToString(want[:]) {
		t.Errorf("after the binary changed the sum = %s, want the new content's", got)
	}
}
