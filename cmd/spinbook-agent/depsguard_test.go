package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// forbidden are the modules the agent binary must not carry: the cloud and
// cluster clients, the container engine's client, the template library and
// the command-line framework of the spinbook command. They are what made
// the agent the whole 116 MB command line (issue 18).
var forbidden = []string{
	"github.com/aws/aws-sdk-go-v2",
	"github.com/aws/smithy-go",
	"k8s.io/",
	"sigs.k8s.io/",
	"github.com/docker/",
	"github.com/moby/",
	"github.com/awslabs/goformation",
	"github.com/spf13/cobra",
	"github.com/spf13/pflag",
}

// TestAgentDependencies fails when the agent's dependency graph gains one
// of the forbidden modules. Move what pulled it in behind the command line
// (internal/cli), or write the little the agent needs (internal/awslite).
func TestAgentDependencies(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		goBin = "go"
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; the check would prove nothing", len(deps))
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("the agent binary imports %s (module %s)", dep, f)
			}
		}
	}
}
