// Package awslite is the little of AWS a server's agent needs, without the
// AWS SDK: Signature Version 4, credentials from the environment or the ECS
// task-role endpoint, a few S3 object calls (HEAD, GET, PUT with
// If-None-Match, DELETE, ListObjectsV2) and CloudFormation's DeleteStack
// and DescribeStacks over the query protocol.
//
// The command line keeps the SDK (profiles, SSO, retries, multipart
// transfers); this package exists so that the agent binary, copied into
// every server, stays small (cmd/spinbook-agent, depsguard_test.go).
package awslite

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// EmptySHA256 is the hex SHA-256 of no bytes: the payload hash of a
// request without a body.
const EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Credentials are the keys a request is signed with.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string    // "" for long-term keys
	Expires         time.Time // zero: do not expire
}

// Sign adds SigV4 headers (X-Amz-Date, X-Amz-Content-Sha256,
// X-Amz-Security-Token when there is one, Authorization) to req for
// service in region at time now. payloadHash is the hex SHA-256 of the
// body (EmptySHA256 for none). Signed are Host, Content-Type,
// If-None-Match, Content-Md5 and every X-Amz-* header.
func Sign(req *http.Request, c Credentials, region, service, payloadHash string, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if c.SessionToken != "" {
		req.Header.Set("X-Amz-Security-Token", c.SessionToken)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	headers := map[string]string{"host": host}
	for name, vals := range req.Header {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "x-amz-") || l == "content-type" || l == "if-none-match" || l == "content-md5" {
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			headers[l] = strings.Join(vals, ",")
		}
	}
	names := make([]string, 0, len(headers))
	for n := range headers {
		names = append(names, n)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, n := range names {
		canonHeaders.WriteString(n + ":" + headers[n] + "\n")
	}
	signed := strings.Join(names, ";")
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	if service != "s3" {
		// Every service but S3 wants the path encoded twice.
		path = escapePath(path)
	}
	canonical := strings.Join([]string{req.Method, path, canonicalQuery(req.URL), canonHeaders.String(), signed, payloadHash}, "\n")
	scope := day + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hexSHA256([]byte(canonical))
	key := hmacSHA256([]byte("AWS4"+c.SecretAccessKey), day)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+c.AccessKeyID+"/"+scope+", SignedHeaders="+signed+", Signature="+sig)
}

// canonicalQuery sorts the query by name, then value, each part encoded
// as SigV4 wants (RFC 3986 unreserved characters only left alone).
func canonicalQuery(u *url.URL) string {
	q := u.Query()
	type kv struct{ k, v string }
	var all []kv
	for k, vs := range q {
		for _, v := range vs {
			all = append(all, kv{escape(k), escape(v)})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].k != all[j].k {
			return all[i].k < all[j].k
		}
		return all[i].v < all[j].v
	})
	parts := make([]string, len(all))
	for i, p := range all {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// escape percent-encodes everything but A-Z a-z 0-9 - _ . ~.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}

// escapePath escapes each segment of a path, keeping the slashes.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	return strings.Join(segs, "/")
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
