// Package imdstest starts the AWS-made simulator of the EC2 instance
// metadata service, amazon-ec2-metadata-mock, for the tests of the agent's
// spot watch: IMDSv2 only, on a free loopback port, with its spot
// interruption and rebalance options.
package imdstest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spinbook/spinbook/internal/proc/proctest"
)

// Version is the ec2-metadata-mock that scripts/setup --for-tests builds.
const Version = "v1.13.0"

// Binary returns the ec2-metadata-mock binary: on PATH, else where
// scripts/setup caches it; "" when there is none.
func Binary() string {
	if p, err := exec.LookPath("ec2-metadata-mock"); err == nil {
		return p
	}
	p := filepath.Join("/var/cache/spinbook", "ec2-metadata-mock-"+Version, "ec2-metadata-mock")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// Start runs ec2-metadata-mock with args (such as "spot", "-d", "3")
// plus IMDSv2 only, a loopback host and a free port, and returns its base
// URL; it stops when the test ends. When the binary is missing the test is
// skipped naming the command that installs it — and fails in CI, which
// runs that command.
func Start(t testing.TB, args ...string) string {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "ec2-metadata-mock " + Version + " is not installed: run scripts/setup --for-tests"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	addr := proctest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	home := t.TempDir() // no aemm-config.json of the user's applies
	cmd := exec.Command(bin, append(args, "--imdsv2", "--hostname", "127.0.0.1", "--port", port)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Dir = home
	proctest.StartListening(t, "ec2-metadata-mock", cmd, addr)
	return "http://" + addr
}
