package local

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAgentEnv(t *testing.T) {
	operator := []string{
		"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC", "TERM=xterm", "SPINBOOK_CACHE=/srv/spinbook-cache",
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/zsh",
		"AWS_SECRET_ACCESS_KEY=canary", "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1", "GITHUB_TOKEN=canary",
		"LD_PRELOAD=/tmp/evil.so", "VIRTUAL_ENV=/opt/venv", "SPINBOOK_CONFIG=/root/spinbook.yaml",
	}
	alice := account{Name: "spinbook-alice", Home: "/var/lib/spinbook/homes/alice", Shell: "/bin/bash", Switch: true}
	tests := []struct {
		name    string
		environ []string
		acct    account
		named   []string
		want    []string
	}{
		{"allowlist only", operator, alice, nil, []string{
			"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC", "TERM=xterm", "SPINBOOK_CACHE=/srv/spinbook-cache",
			"HOME=/var/lib/spinbook/homes/alice", "USER=spinbook-alice", "LOGNAME=spinbook-alice", "SHELL=/bin/bash",
		}},
		{"what local.env names", operator, alice, []string{"VIRTUAL_ENV", "NOT_SET"}, []string{
			"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC", "TERM=xterm", "SPINBOOK_CACHE=/srv/spinbook-cache", "VIRTUAL_ENV=/opt/venv",
			"HOME=/var/lib/spinbook/homes/alice", "USER=spinbook-alice", "LOGNAME=spinbook-alice", "SHELL=/bin/bash",
		}},
		{"no PATH: a default one", []string{"AWS_SECRET_ACCESS_KEY=canary"}, alice, nil, []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"HOME=/var/lib/spinbook/homes/alice", "USER=spinbook-alice", "LOGNAME=spinbook-alice", "SHELL=/bin/bash",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := agentEnv(tc.environ, tc.acct, tc.named)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("agentEnv (-want +got):\n%s", diff)
			}
			if slices.Contains(got, "AWS_SECRET_ACCESS_KEY=canary") {
				t.Error("the operator's cloud key passed")
			}
		})
	}
}
