package backend

import (
	"io"
	"net/http"
)

// Labels (Docker, Kubernetes) and tags (AWS) on everything a backend
// creates: with them the backend, not a side database, is the truth about
// what runs, and `spinbook ls` reads them.
const (
	LabelManaged = "managed-by"    // always ManagedBy
	LabelUser    = "spinbook.user" // the server's user
	LabelSize    = "spinbook.size" // the size it was brought up with
	LabelTLS     = "spinbook.tls"  // "true" when the front door serves TLS
	// LabelAccessDigest holds Spec.AccessDigest, so that up can tell a
	// server started with other access settings.
	LabelAccessDigest = "spinbook.access-digest"
	ManagedBy         = "spinbook"
)

// Ready reports whether the agent whose health listener is at healthBase
// (scheme://host:port) says Jupyter answers: GET /readyz is 200.
func Ready(client *http.Client, healthBase string) bool {
	resp, err := client.Get(healthBase + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
