package agent

import (
	"crypto/subtle"
	"net/http"
	"strconv"
)

// IMDSRelay serves the agent of a spot server, in its container, the two
// paths of the instance metadata service it watches, read on the instance
// with the relay's own IMDSv2 token. The container is one network hop
// further than IMDSv2's hop limit of 1 lets a token reach — the limit that
// keeps the instance role from kernels — so the relay, run on the
// instance (`spinbook imds-relay`), stands between: it answers a token
// request with a token of its own, which the instance metadata service
// does not know, and every other path with 404. Nothing else of the
// metadata service, the instance role's credentials least of all, passes.
type IMDSRelay struct {
	upstream *imdsClient
	token    string
}

// NewIMDSRelay returns a relay to the metadata service at upstream (""
// is http://169.254.169.254).
func NewIMDSRelay(upstream string) *IMDSRelay {
	return &IMDSRelay{upstream: newIMDSClient(upstream, 0), token: randomHex(32)}
}

// ServeHTTP answers PUT /latest/api/token and GETs of the spot paths.
func (r *IMDSRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == imdsTokenPath && req.Method == http.MethodPut:
		ttl, err := strconv.Atoi(req.Header.Get(imdsTTLHeader))
		if err != nil || ttl < 1 || ttl > int(imdsMaxTTL.Seconds()) {
			http.Error(w, "the "+imdsTTLHeader+" header must be 1 to 21600", http.StatusBadRequest)
			return
		}
		w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
		w.Write([]byte(r.token))
	case req.URL.Path != spotInterruptionPath && req.URL.Path != spotRebalancePath:
		http.NotFound(w, req)
	case req.Method != http.MethodGet:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case subtle.ConstantTimeCompare([]byte(req.Header.Get(imdsTokenHeader)), []byte(r.token)) != 1:
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	default:
		body, found, err := r.upstream.get(req.Context(), req.URL.Path)
		switch {
		case err != nil:
			http.Error(w, "the instance metadata service cannot be read", http.StatusBadGateway)
		case !found:
			http.NotFound(w, req)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
}
