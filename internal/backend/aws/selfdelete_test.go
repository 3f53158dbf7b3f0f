package aws

import (
	"errors"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

// TestDeleteOwnStack: the release after an idle stop deletes exactly the
// server's own stack in moto — built from the real instance template —
// waits until it is gone, and leaves the others.
func TestDeleteOwnStack(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"alice", "bob"} {
		deployInstanceStack(t, w, user)
	}
	var lines []string
	if err := DeleteOwnStack(ctx, w.moto.Config(), "spinbook-test-alice", 30*time.Second, func(s string) { lines = append(lines, s) }); err != nil {
		t.Fatalf("DeleteOwnStack: %v", err)
	}
	if st := w.stack(t, "spinbook-test-alice"); st != nil {
		t.Errorf("alice's stack is %s after the wait, want it gone", st.StackStatus)
	}
	if st := w.stack(t, "spinbook-test-bob"); st == nil || st.StackStatus != types.StackStatusCreateComplete {
		t.Errorf("bob's stack is %+v, want it untouched", st)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "spinbook-test-alice is deleted") {
		t.Errorf("progress does not say the stack is deleted: %q", lines)
	}

	sdk := w.moto.Config()
	tests := []struct {
		name  string
		stack string
		sdk   awssdk.Config
		want  error
	}{
		{"not a spinbook stack", "production-db", sdk, ErrNotInstanceStack},
		{"no region", "spinbook-test-bob", awssdk.Config{Credentials: sdk.Credentials, BaseEndpoint: sdk.BaseEndpoint}, ErrNoRegion},
		{"no credentials", "spinbook-test-bob", awssdk.Config{Region: "us-east-1", BaseEndpoint: sdk.BaseEndpoint}, ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DeleteOwnStack(t.Context(), tt.sdk, tt.stack, time.Second, func(string) {})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.stack) {
				t.Errorf("DeleteOwnStack = %v, want %v naming %s", err, tt.want, tt.stack)
			}
		})
	}
	if st := w.stack(t, "spinbook-test-bob"); st == nil || st.StackStatus != types.StackStatusCreateComplete {
		t.Errorf("a refused release touched bob's stack: %+v", st)
	}
}

// deployInstanceStack makes user's instance stack from the real template,
// as `spinbook up` does, without waiting for an agent.
func deployInstanceStack(t *testing.T, w *world, user string) {
	t.Helper()
	site := w.stack(t, SiteStackName("test"))
	// The instance stack imports the user's workspace volume.
	if _, err := w.be.ensureWorkspace(t.Context(), site, user, w.cfg.WorkspaceGiB(""), output(site, outputStackRole), w.events.add); err != nil {
		t.Fatalf("%s's workspace: %v", user, err)
	}
	body, err := templateBody(InstanceTemplate(w.cfg, InstanceParams{User: user}))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := w.be.putSecret(t.Context(), SecretPrefix("test", user)+secretSpec, `{"user":"`+user+`"}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	tags := baseTags("test")
	tags[tagUser], tags[tagRole] = user, "instance"
	if _, err := w.be.deploy(t.Context(), deployment{
		name: InstanceStackName("test", user), body: body, tags: tags, roleARN: output(site, outputStackRole),
		params: map[string]string{paramImage: "quay.io/jupyter/base-notebook", paramAgentKey: "agent/x/spinbook",
			paramAgentSHA256: strings.Repeat("0", 64), paramSpecSecretARN: secret.ARN, paramSpecVersionID: secret.VersionID},
	}, w.events.add); err != nil {
		t.Fatalf("deploy %s's stack: %v", user, err)
	}
}
