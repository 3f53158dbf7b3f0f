package config

import (
	"net"
	"net/url"
	"strings"
)

// Repo is the team's git repository: the first `spinbook up` clones it into
// the workspace, and `spinbook save` and `spinbook down` push the work back.
// Leave it out for an empty workspace.
type Repo struct {
	// URL is the repository's https:// URL, without a password (the token
	// has a key of its own); http:// only for a host on this machine.
	// Required when any other repo key is set.
	URL string `yaml:"url"`

	// Branch is the branch checked out on the first up and pushed to by a
	// save. Default: the remote's default branch.
	Branch string `yaml:"branch"`

	// Token is the git host's access token, best as a reference resolved
	// when the server starts: ${env:NAME} or ${file:PATH}. git gets it
	// from spinbook's credential helper, never in a URL, file or argv; it
	// is sent as the password, with the URL's user name if it has one,
	// else x-access-token. Empty: the repository needs no login.
	Token string `yaml:"token"`

	// Author signs the commits a save makes. Default: the server's user
	// name, and USER@users.noreply.spinbook.invalid.
	Author RepoAuthor `yaml:"author"`

	// StripOutputs commits notebooks (*.ipynb) without their outputs and
	// execution counts; the notebooks in the workspace keep them.
	// Default: false.
	StripOutputs bool `yaml:"strip_outputs"`
}

// RepoAuthor is who commits are attributed to.
type RepoAuthor struct {
	// Name is the author's name, such as "Alice Example".
	Name string `yaml:"name"`
	// Email is the author's email address.
	Email string `yaml:"email"`
}

// Enabled reports whether a repository is configured.
func (r *Repo) Enabled() bool { return r.URL != "" }

func (v *validation) repo() {
	r := &v.c.Repo
	if *r == (Repo{}) {
		return
	}
	if r.URL == "" {
		v.missing("repo.url", "required when a repo is configured: the repository's https:// URL")
	} else if msg := checkRepoURL(r.URL, r.Token != ""); msg != "" {
		v.problemf("repo.url", "%s", msg)
	}
	if msg := checkBranch(r.Branch); msg != "" {
		v.problemf("repo.branch", "%s", msg)
	}
	if strings.ContainsFunc(r.Author.Name, isControl) || strings.ContainsAny(r.Author.Name, "<>") {
		v.problemf("repo.author.name", "%q may not hold <, > or control characters", r.Author.Name)
	}
	if e := r.Author.Email; e != "" && (!strings.Contains(e, "@") || strings.ContainsFunc(e, isControl) || strings.ContainsAny(e, "<> ")) {
		v.problemf("repo.author.email", "%q is not an email address", e)
	}
}

// checkRepoURL says what is wrong with a repository URL, never quoting it
// whole: it might carry a password.
func checkRepoURL(raw string, token bool) string {
	if strings.HasPrefix(raw, "git@") || strings.HasPrefix(raw, "ssh://") {
		return "an ssh URL; give the https:// URL of the repository (the token authenticates over https)"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "not an https:// URL of a repository (example: https://git.example.com/team/notebooks.git)"
	}
	if _, ok := u.User.Password(); ok {
		return "the URL holds a password; remove it and put the token in repo.token (best as ${env:NAME})"
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "the URL has a query or fragment; give the repository's plain URL"
	}
	if u.Scheme == "http" && token && !isLoopbackHost(u.Hostname()) {
		return "http:// would send the token in the clear; use https://"
	}
	return ""
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkBranch applies the rules of git check-ref-format that a branch name
// in a config is likely to break.
func checkBranch(b string) string {
	switch {
	case b == "":
		return ""
	case strings.ContainsFunc(b, isControl) || strings.ContainsAny(b, " ~^:?*[\\"):
		return "a branch name may not hold spaces, control characters or any of ~^:?*[\\"
	case strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") ||
		strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock") || strings.Contains(b, "..") ||
		strings.Contains(b, "//") || strings.Contains(b, "@{") || strings.HasPrefix(b, "refs/"):
		return "not a valid branch name (example: main)"
	}
	return ""
}
