package aws

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
)

// failingWorld is the backend against the FAILING-STACK STAND-IN (package
// awsstandin), for the one thing moto cannot play: a stack whose create
// fails. moto 5.2.5 creates every resource at once inside CreateStack and
// never reports CREATE_FAILED, a rollback or a failed resource's reason,
// so how spinbook reports one (StackError, --keep-failed) is tested here.
type failingWorld struct {
	*world
	si *awsstandin.StandIn
}

func newFailingWorld(t *testing.T) *failingWorld {
	t.Helper()
	si := awsstandin.New()
	t.Cleanup(si.Close)
	cfg := loadConfig(t, "created-vpc")
	cfg.AWS.Site = "test"
	// The agent behind the stack's URL: its control API's status, to the
	// holder of the control token alice's spec secret holds.
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := si.Secret(SecretPrefix("test", "alice") + secretSpec)
		var spec backend.AgentSpec
		json.Unmarshal([]byte(raw), &spec)
		if r.URL.Path == "/spinbook/api/status" && ok && r.Header.Get("Authorization") == "Bearer "+spec.ControlToken {
			io.WriteString(w, `{"user":"alice","ready":true}`)
			return
		}
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(agent.Close)
	sdk := standInSite(si, agent.URL+"/")
	be, err := New(cfg, slog.New(slog.DiscardHandler), Options{AgentPath: fakeELF(t), SDK: &sdk, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &failingWorld{world: &world{be: be, cfg: cfg, events: &eventLog{}}, si: si}
}

// TestFlowRollbackShowsTheReason: a create that fails names the resource
// and CloudFormation's reason, deletes the failed stack (or keeps it with
// --keep-failed), and the next up starts over.
func TestFlowRollbackShowsTheReason(t *testing.T) {
	const reason = "We currently do not have sufficient g5.2xlarge capacity in the Availability Zone you requested (us-east-1a)."
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "kept"}[keep], func(t *testing.T) {
			w := newFailingWorld(t)
			ctx := t.Context()
			if err := w.be.SiteUp(ctx, w.events.add); err != nil {
				t.Fatal(err)
			}
			name := InstanceStackName("test", "alice")
			w.si.Fail[name] = awsstandin.Failure{Resource: "Instance", Type: "AWS::EC2::Instance", Reason: reason}
			spec := w.spec()
			spec.KeepFailed = keep
			_, err := w.be.Up(ctx, spec, w.events.add)
			var serr *StackError
			if !errors.As(err, &serr) {
				t.Fatalf("Up = %v, want a *StackError", err)
			}
			if serr.Resource != "Instance" || serr.Reason != reason || !strings.Contains(err.Error(), reason) {
				t.Errorf("the error names %q (%q), want the instance and its reason: %v", serr.Resource, serr.Reason, err)
			}
			if !strings.Contains(w.events.text(), "Instance (EC2::Instance): CREATE_FAILED: "+reason) {
				t.Errorf("progress does not show the failure:\n%s", w.events.text())
			}
			status, _, _, _ := w.si.Stack(name)
			switch {
			case keep && (status != "CREATE_FAILED" || !serr.Kept):
				t.Errorf("with --keep-failed the stack is %s (kept %v), want CREATE_FAILED", status, serr.Kept)
			case !keep && status != "DELETE_COMPLETE":
				t.Errorf("the failed stack is %s, want it deleted", status)
			}
			if !keep && w.si.CallCount("cloudformation:DeleteStack") != 1 {
				t.Errorf("calls: %v", w.si.Calls)
			}
			// The next up starts over, and succeeds.
			if srv, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil || !srv.Ready {
				t.Errorf("Up after the failure = %+v, %v", srv, err)
			}
		})
	}
}
