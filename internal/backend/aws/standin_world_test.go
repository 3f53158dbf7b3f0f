package aws

// The aws backend against the STAND-IN for AWS (package awsstandin), for
// what moto cannot play: a stack create that fails (spot capacity), EC2
// calls on volumes a template made, and answers whose timing a test
// sets. Everything moto can play runs against moto (flow_test.go).

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/config"
)

// fakeAgent answers the control API's status, as the agent behind the load
// balancer would, to the holder of a control token a spec secret of site
// holds (every user's stack reports this one URL).
func fakeAgent(t *testing.T, si *awsstandin.StandIn, site string, users ...string) *httptest.Server {
	secrets := map[string]string{}
	for _, u := range users {
		secrets[u] = SecretPrefix(site, u) + secretSpec
	}
	srv := si.Agent(secrets)
	t.Cleanup(srv.Close)
	return srv
}

// standInStackRole is the StackRoleArn output the stand-in's site reports.
const standInStackRole = "arn:aws:iam::123456789012:role/spinbook-test-StackRole-AbC123"

// standInSubnet and standInVolume are the stand-in site's private subnet
// and the workspace volume its workspace stacks report.
const (
	standInSubnet = "subnet-0a1b2c3d4e5f60718"
	standInVolume = "vol-0123456789abcdef0"
)

type standInWorld struct {
	si     *awsstandin.StandIn
	be     *AWS
	cfg    *config.Config
	events *eventLog
}

func newStandInWorld(t *testing.T) *standInWorld {
	t.Helper()
	return newStandInWorldOf(t, "created-vpc", "alice", "conf-a", "conf-b", "conf-c", "conf-d")
}

// newStandInWorldOf is newStandInWorld with the config testdata/config.yaml, in site
// test, whose agent answers users.
func newStandInWorldOf(t *testing.T, config string, users ...string) *standInWorld {
	t.Helper()
	si := awsstandin.New()
	t.Cleanup(si.Close)
	cfg := loadConfig(t, config)
	cfg.AWS.Site = "test"
	agent := fakeAgent(t, si, "test", users...)
	sdk := standInSite(si, agent.URL+"/")
	be, err := New(cfg, slog.New(slog.DiscardHandler), Options{AgentPath: fakeELF(t), SDK: &sdk, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &standInWorld{si: si, be: be, cfg: cfg, events: &eventLog{}}
}

// standInSite makes the stand-in report a site (its outputs, its private
// subnet and the volume every workspace stack reports: it makes none from
// templates) whose servers answer at url, and returns the SDK's config
// for it.
func standInSite(si *awsstandin.StandIn, url string) awssdk.Config {
	si.Outputs[outputAgentBucket] = "spinbook-test-agentbucket-1x2y3z"
	si.Outputs[outputNatAddress] = "198.51.100.77"
	si.Outputs[outputURL] = url
	si.Outputs[outputStackRole] = standInStackRole
	si.Outputs[exportPrivateSubnet] = standInSubnet
	si.AddSubnet(standInSubnet, "us-east-1b")
	si.Outputs[exportWorkspaceVolume] = standInVolume
	si.AddVolume(awsstandin.Volume{ID: standInVolume, Zone: "us-east-1b"})
	return awssdk.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "stand-in-secret", ""),
		BaseEndpoint: awssdk.String(si.URL),
	}
}

// spec is what the command line would hand Up, with canary secrets.
func (w *standInWorld) spec() backend.Spec {
	as := backend.AgentSpec{
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$CANARYSALTCANARYSALT$CANARYHASH",
		Allow:        w.cfg.Access.Allow,
		Warehouse:    &backend.Warehouse{Host: "dw.example", Port: 5439, Database: "a", User: "nb", Password: "CANARY-warehouse-password-5c1e"},
		Repo:         &backend.Repo{URL: "https://git.example.com/team/notebooks.git", Token: "CANARY-git-token-77ab"},
		Secrets:      []string{"CANARY-warehouse-password-5c1e", "CANARY-git-token-77ab"},
		ControlToken: "CANARY-control-token-" + requestToken(),
		Idle:         &backend.Idle{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute, Size: "gpu"},
	}
	return backend.Spec{User: "alice", Agent: as, AccessDigest: as.AccessDigest(), Size: "gpu"}
}
