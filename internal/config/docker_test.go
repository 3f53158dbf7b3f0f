package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// defaultDocker is the docker section Validate fills in when the file has none.
func defaultDocker() Docker {
	return Docker{PublishHost: "127.0.0.1", Network: "spinbook", StopGrace: "60s", StopGraceDuration: time.Minute}
}

func TestDockerAndSizes(t *testing.T) {
	hermetic(t)
	c, err := Load("testdata/valid/docker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend != "docker" || c.Image != "quay.io/jupyter/pytorch-notebook:cuda12-latest" {
		t.Errorf("backend, image = %q, %q", c.Backend, c.Image)
	}
	wantDocker := Docker{PublishHost: "0.0.0.0", Network: "team", StopGrace: "2m", StopGraceDuration: 2 * time.Minute}
	if diff := cmp.Diff(wantDocker, c.Docker); diff != "" {
		t.Errorf("docker (-want +got):\n%s", diff)
	}
	wantSizes := map[string]Size{
		"small": {CPUs: "2", Memory: "8GiB", NanoCPUs: 2e9, MemoryBytes: 8 << 30},
		"gpu": {CPUs: "8", Memory: "64GiB", GPUs: "1", Shm: "16GiB",
			NanoCPUs: 8e9, MemoryBytes: 64 << 30, GPUCount: 1, ShmBytes: 16 << 30},
		"half": {CPUs: "0.5", Memory: "512MiB", GPUs: "all", NanoCPUs: 5e8, MemoryBytes: 512 << 20, GPUCount: -1},
	}
	if diff := cmp.Diff(wantSizes, c.Sizes); diff != "" {
		t.Errorf("sizes (-want +got):\n%s", diff)
	}
	if got := c.SizeNames(); !cmp.Equal(got, []string{"gpu", "half", "small"}) {
		t.Errorf("SizeNames = %v", got)
	}
	if _, err := c.LookupSize("huge"); err == nil || !strings.Contains(err.Error(), "valid: gpu, half, small") {
		t.Errorf("LookupSize(huge) = %v, want the valid names", err)
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"8GiB", 8 << 30, true},
		{"512MiB", 512 << 20, true},
		{"1.5GiB", 3 << 29, true},
		{"100B", 100, true},
		{"8G", 0, false},
		{"8GB", 0, false},
		{"GiB", 0, false},
		{"-1GiB", 0, false},
		{"2048", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, msg := parseBytes(tt.in)
			if (msg == "") != tt.ok || got != tt.want {
				t.Errorf("parseBytes(%q) = %d, %q; want %d, ok=%v", tt.in, got, msg, tt.want, tt.ok)
			}
		})
	}
}
