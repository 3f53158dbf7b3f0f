package secret

import "strings"

// Scrub returns env, a list of NAME=VALUE entries such as os.Environ()
// gives, without every variable whose value holds one of secrets: the
// variables a ${env:NAME} reference was resolved from, and any other copy.
// Values shorter than the Redactor's minimum count only when they are the
// whole value. Start a child that must not see the secrets with
// cmd.Env = Scrub(os.Environ(), secrets).
func Scrub(env, secrets []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if _, v, _ := strings.Cut(kv, "="); !holdsSecret(v, secrets) {
			out = append(out, kv)
		}
	}
	return out
}

// Holders returns the names of the variables in env that Scrub removes.
func Holders(env, secrets []string) []string {
	var names []string
	for _, kv := range env {
		if name, v, _ := strings.Cut(kv, "="); holdsSecret(v, secrets) {
			names = append(names, name)
		}
	}
	return names
}

func holdsSecret(v string, secrets []string) bool {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if v == s || (len(s) >= minSecretLen && strings.Contains(v, s)) {
			return true
		}
	}
	return false
}
