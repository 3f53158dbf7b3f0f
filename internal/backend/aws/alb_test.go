package aws

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spinbook/spinbook/internal/backend"
)

// collidesWithAlice is a user name whose preferred rule priority is
// alice's (found by trying user0, user1, ...).
const collidesWithAlice = "user70790"

func TestFreePriority(t *testing.T) {
	alice := preferredPriority("alice")
	tests := []struct {
		name  string
		user  string
		taken map[int]string
		want  int
	}{
		{"nothing taken: the preferred one", "alice", nil, alice},
		{"own priority is no obstacle", "alice", map[int]string{alice: "alice"}, alice},
		{"taken by another: the next", "alice", map[int]string{alice: "bob"}, alice + 1},
		{"a run of taken ones", "alice", map[int]string{alice: "bob", alice + 1: "carol", alice + 2: "dave"}, alice + 3},
		{"the same preference: the next", collidesWithAlice, map[int]string{alice: "alice"}, alice + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := freePriority(tt.user, tt.taken)
			if !ok || got != tt.want {
				t.Errorf("freePriority(%q, %v) = %d, %v; want %d", tt.user, tt.taken, got, ok, tt.want)
			}
		})
	}
	if preferredPriority(collidesWithAlice) != alice {
		t.Fatalf("%s no longer prefers alice's priority %d", collidesWithAlice, alice)
	}
	// The last priority taken: the search wraps around to 1.
	taken := map[int]string{}
	for pr := preferredPriority("alice"); pr <= maxUserPriority; pr++ {
		taken[pr] = "x"
	}
	if got, ok := freePriority("alice", taken); !ok || got != 1 {
		t.Errorf("with %d..%d taken, freePriority = %d, %v; want 1", alice, maxUserPriority, got, ok)
	}
	for pr := 1; pr < alice; pr++ {
		taken[pr] = "x"
	}
	if got, ok := freePriority("alice", taken); ok {
		t.Errorf("with every priority taken, freePriority = %d, true", got)
	}
}

// TestFlowSharedLoadBalancer: behind the site's shared load balancer, two
// users whose names prefer the same rule priority get distinct ones, keep
// them on the next up, and each stack is a target group and a rule for
// USER.DOMAIN, with no load balancer of its own.
func TestFlowSharedLoadBalancer(t *testing.T) {
	w := newStandInWorldOf(t, "shared-alb", "alice", collidesWithAlice)
	w.si.Outputs[exportListener] = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/spinbook-test/50dc6c495c0c9188/f2f7dc8efc522ab2"
	w.si.Outputs[outputLoadBalancerDNS] = "spinbook-test-1234567890.us-east-1.elb.amazonaws.com"
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatalf("SiteUp: %v\nevents:\n%s", err, w.events.text())
	}
	if !strings.Contains(w.events.text(), "spinbook-test-1234567890.us-east-1.elb.amazonaws.com") || !strings.Contains(w.events.text(), "*.notebooks.example.com") {
		t.Errorf("site up does not say where to point *.notebooks.example.com:\n%s", w.events.text())
	}
	alice := preferredPriority("alice")
	up := func(user string, want int) {
		t.Helper()
		spec := w.spec()
		spec.User = user
		if _, err := w.be.Up(ctx, spec, w.events.add); err != nil {
			t.Fatalf("Up %s: %v\nevents:\n%s", user, err, w.events.text())
		}
		name := InstanceStackName("test", user)
		_, _, tags, _ := w.si.Stack(name)
		tpl := w.si.Template(name)
		if tags[tagRulePriority] != itoa(want) || !regexp.MustCompile(`"Priority":`+itoa(want)+`\D`).MatchString(tpl) {
			t.Errorf("%s's stack has the rule priority tag %q, want %d in the tag and its rule", user, tags[tagRulePriority], want)
		}
		host := `"Values":["` + user + `.notebooks.example.com"]`
		if !strings.Contains(tpl, host) || !strings.Contains(tpl, `"--host","`+user+`.notebooks.example.com"`) {
			t.Errorf("%s's stack does not route and admit %s.notebooks.example.com:\n%s", user, user, tpl)
		}
		if strings.Contains(tpl, "AWS::ElasticLoadBalancingV2::LoadBalancer") || strings.Contains(tpl, "AWS::ElasticLoadBalancingV2::Listener\"") {
			t.Errorf("%s's stack has a load balancer or listener of its own", user)
		}
	}
	up("alice", alice)
	up(collidesWithAlice, alice+1)
	up("alice", alice)
	up(collidesWithAlice, alice+1)
	servers, err := w.be.List(ctx)
	if err != nil || len(servers) != 2 {
		t.Fatalf("List = %v, %v; want both servers", servers, err)
	}
	for _, s := range servers {
		if s.State != backend.Running {
			t.Errorf("%s is %s", s.User, s.State)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSharedURL: behind the shared load balancer, the URL status and ls
// show is https://USER.DOMAIN/ (http:// without a certificate).
func TestSharedURL(t *testing.T) {
	r := rendered(t)
	for name, want := range map[string]string{
		"instance-shared-alb":              "https://alice.notebooks.example.com/",
		"instance-shared-alb-existing-vpc": "http://alice.nb.example.org/",
	} {
		if got := parse(t, r[name]).Outputs[outputURL].Value; got != want {
			t.Errorf("%s: URL output %v, want %s", name, got, want)
		}
	}
}

// TestDNSMissing: a server name that does not resolve, behind the shared
// load balancer, is explained (the wildcard record is missing); other
// errors, and the per-server mode, are left to the usual retries.
func TestDNSMissing(t *testing.T) {
	shared := &AWS{cfg: loadConfig(t, "shared-alb")}
	perServer := &AWS{cfg: loadConfig(t, "created-vpc")}
	notFound := &url.Error{Op: "Get", URL: "https://alice.notebooks.example.com/", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "alice.notebooks.example.com", IsNotFound: true}}}
	tests := []struct {
		name string
		a    *AWS
		err  error
		want string
	}{
		{"shared, name missing", shared, notFound, "point a wildcard DNS record *.notebooks.example.com"},
		{"shared, timeout", shared, &net.DNSError{Err: "timeout", IsTimeout: true}, ""},
		{"shared, refused", shared, errors.New("connection refused"), ""},
		{"per server", perServer, notFound, ""},
		{"no error", shared, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.a.dnsMissing(tt.err, "alice.notebooks.example.com")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("dnsMissing = %q, want %q", got, tt.want)
			}
		})
	}
}
