package local

import (
	"slices"
	"strings"
)

// passedEnv are the variables of the operator's environment every server
// gets (LC_* too): what programs need to find each other and speak the
// right language, nothing that grants access to anything. SPINBOOK_CACHE
// is where scripts/jupyter-venv keeps the Jupyter venv the agent falls
// back to: the agent must look where `up` was told to.
var passedEnv = []string{"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "SPINBOOK_CACHE"}

// agentEnv is the environment a server's agent starts with, and so what
// Jupyter and its kernels inherit: from environ (the operator's) only the
// allowlisted variables and those local.env names, and HOME, USER, LOGNAME
// and SHELL of the account the server runs as.
func agentEnv(environ []string, acct account, named []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if slices.Contains(passedEnv, name) || strings.HasPrefix(name, "LC_") || slices.Contains(named, name) {
			out = append(out, kv)
		}
	}
	if !slices.ContainsFunc(out, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		out = append(out, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	if acct.Home != "" {
		out = append(out, "HOME="+acct.Home)
	}
	if acct.Name != "" {
		out = append(out, "USER="+acct.Name, "LOGNAME="+acct.Name)
	}
	if acct.Shell != "" {
		out = append(out, "SHELL="+acct.Shell)
	}
	return out
}
