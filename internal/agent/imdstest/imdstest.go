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
	"strconv"
	"testing"
	"time"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	home := t.TempDir() // no aemm-config.json of the user's applies
	logf, err := os.Create(filepath.Join(t.TempDir(), "ec2-metadata-mock.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, "--imdsv2", "--hostname", "127.0.0.1", "--port", strconv.Itoa(port))...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Dir = home
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ec2-metadata-mock: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("ec2-metadata-mock's log:\n%s", log)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("ec2-metadata-mock exited at once:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ec2-metadata-mock did not listen on %s within 20s", addr)
		}
	}
}
