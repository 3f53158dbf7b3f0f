package aws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/backend/aws/awsstandin"
	"github.com/spinbook/spinbook/internal/config"
)

// spotSize is the config's gpu size run on spot capacity in mode.
func spotSize(cfg *config.Config, mode config.SpotMode) config.Size {
	s := cfg.Sizes["gpu"]
	s.Spot, s.SpotMode = mode.String(), mode
	cfg.Sizes["gpu"] = s
	return s
}

// launchData is the launch template's data in an instance template.
func launchData(t *testing.T, cfg *config.Config, p InstanceParams) map[string]any {
	t.Helper()
	body, err := TemplateJSON(InstanceTemplate(cfg, p))
	if err != nil {
		t.Fatal(err)
	}
	tpl := parse(t, body)
	lt, ok := tpl.Resources["LaunchTemplate"]
	if !ok {
		t.Fatal("no LaunchTemplate")
	}
	data, _ := lt.Properties["LaunchTemplateData"].(map[string]any)
	return data
}

// userDataText is the boot script in launch template data, its Fn::Sub
// template.
func userDataText(t *testing.T, data map[string]any) string {
	t.Helper()
	raw, _ := json.Marshal(data["UserData"])
	return string(raw)
}

// TestSpotTemplate: a spot size's launch template asks for a one-time
// spot instance, terminated when taken, at no more than the on-demand
// price (no MaxPrice), and its boot script starts the metadata relay; an
// on-demand size, and a spot size fallen back, have neither.
func TestSpotTemplate(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mode     config.SpotMode
		onDemand bool
		spot     bool
	}{
		{"spot: true", config.SpotOn, false, true},
		{"spot: prefer", config.SpotPrefer, false, true},
		{"spot: prefer, fallen back", config.SpotPrefer, true, false},
		{"spot: false", config.SpotOff, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, "created-vpc")
			p := InstanceParams{User: "alice", SizeName: "gpu", Size: spotSize(cfg, tt.mode), OnDemand: tt.onDemand}
			data := launchData(t, cfg, p)
			mo, has := data["InstanceMarketOptions"].(map[string]any)
			ud := userDataText(t, data)
			if !tt.spot {
				if has || strings.Contains(ud, "imds-relay") {
					t.Errorf("an on-demand instance has market options %v or the relay", mo)
				}
				if w := spotWatch(p); w != nil {
					t.Errorf("spotWatch = %+v on-demand", w)
				}
				return
			}
			so, _ := mo["SpotOptions"].(map[string]any)
			if mo["MarketType"] != "spot" || so["SpotInstanceType"] != "one-time" || so["InstanceInterruptionBehavior"] != "terminate" {
				t.Errorf("market options %v, want a one-time spot instance, terminated when taken", mo)
			}
			if _, ok := so["MaxPrice"]; ok {
				t.Errorf("MaxPrice %v set: AWS advises none (the on-demand price caps it)", so["MaxPrice"])
			}
			if !strings.Contains(ud, "/opt/spinbook/bin/spinbook imds-relay --listen "+imdsRelayAddr) ||
				!strings.Contains(ud, "systemctl enable --now spinbook-imds-relay.service") {
				t.Errorf("the boot script does not start the metadata relay:\n%s", ud)
			}
			if w := spotWatch(p); w == nil || w.Endpoint != "http://"+imdsRelayAddr {
				t.Errorf("spotWatch = %+v, want the relay", w)
			}
			// The instance keeps IMDSv2 with a hop limit of 1: the relay
			// is how the container reaches it, not a longer hop limit.
			md, _ := data["MetadataOptions"].(map[string]any)
			if md["HttpTokens"] != "required" || md["HttpPutResponseHopLimit"] != float64(1) {
				t.Errorf("metadata options %v, want IMDSv2 with a hop limit of 1", md)
			}
		})
	}
}

// TestIsSpotCapacity: the reasons CloudFormation gives when EC2 has no
// spot capacity (as AWS words them) allow a fall back to on-demand; other
// failures do not.
func TestIsSpotCapacity(t *testing.T) {
	for _, tt := range []struct {
		reason string
		want   bool
	}{
		{`Resource handler returned message: "There is no Spot capacity available that matches your request. (Service: Ec2, Status Code: 500, Request ID: 0f3c2b8e-1d2a-4c5b-9e8f-7a6b5c4d3e2f)" (RequestToken: 7d1e, HandlerErrorCode: GeneralServiceException)`, true},
		{"We currently do not have sufficient g5.2xlarge capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. (Service: AmazonEC2; Status Code: 500; Error Code: InsufficientInstanceCapacity)", true},
		{"Your Spot request price of 0.1 is lower than the minimum required Spot request fulfillment price of 0.4242. (Service: AmazonEC2; Status Code: 400; Error Code: SpotMaxPriceTooLow)", true},
		{"Max spot instance count exceeded (Service: AmazonEC2; Status Code: 400; Error Code: MaxSpotInstanceCountExceeded)", true},
		{"Spot request status: capacity-not-available", true},
		{"You are not authorized to perform this operation. (Service: AmazonEC2; Status Code: 403; Error Code: UnauthorizedOperation)", false},
		{"The image id '[ami-0abc]' does not exist (Service: AmazonEC2; Status Code: 400; Error Code: InvalidAMIID.NotFound)", false},
	} {
		err := &StackError{Stack: "spinbook-test-alice", Operation: "create", Resource: "Instance", Reason: tt.reason}
		if got := isSpotCapacity(err); got != tt.want {
			t.Errorf("isSpotCapacity(%q) = %v, want %v", tt.reason, got, tt.want)
		}
	}
	if isSpotCapacity(errors.New("There is no Spot capacity available")) {
		t.Error("an error that is no stack failure counts as spot capacity")
	}
}

const noSpotReason = `Resource handler returned message: "There is no Spot capacity available that matches your request. (Service: Ec2, Status Code: 500, Request ID: 0f3c2b8e)"`

// TestFlowSpotPreferFallsBack: with spot: prefer and no spot capacity,
// up says so and starts the server on-demand, priced on-demand, without
// the spot watch; the next up leaves it as it is.
func TestFlowSpotPreferFallsBack(t *testing.T) {
	w := newStandInWorld(t)
	ctx := t.Context()
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	spotSize(w.cfg, config.SpotPrefer)
	name := InstanceStackName("test", "alice")
	w.si.Fail[name] = awsstandin.Failure{Resource: "Instance", Type: "AWS::EC2::Instance", Reason: noSpotReason}
	spec := w.spec()
	spot, onDemand := 0.4242, 1.212
	spec.Agent.Idle.PricePerHour, spec.Agent.Idle.OnDemandPerHour, spec.Agent.Idle.SpotPrice = &spot, &onDemand, true
	srv, err := w.be.Up(ctx, spec, w.events.add)
	if err != nil || !srv.Ready {
		t.Fatalf("Up = %+v, %v; want the server on-demand\n%s", srv, err, w.events.text())
	}
	if !strings.Contains(w.events.text(), "AWS has no spot capacity for g5.2xlarge now") || !strings.Contains(w.events.text(), "ON-DEMAND") {
		t.Errorf("progress does not say it fell back:\n%s", w.events.text())
	}
	status, _, tags, _ := w.si.Stack(name)
	if status != "CREATE_COMPLETE" || tags[tagMarket] != "on-demand" {
		t.Errorf("stack %s, market %q; want it created on-demand", status, tags[tagMarket])
	}
	if tpl := w.si.Template(name); strings.Contains(tpl, "InstanceMarketOptions") {
		t.Error("the on-demand stack's template asks for spot")
	}
	raw, _ := w.si.Secret(SecretPrefix("test", "alice") + secretSpec)
	var as backend.AgentSpec
	if err := json.Unmarshal([]byte(raw), &as); err != nil {
		t.Fatal(err)
	}
	if as.Spot != nil || as.Idle == nil || as.Idle.PricePerHour == nil || *as.Idle.PricePerHour != onDemand || as.Idle.SpotPrice {
		t.Errorf("the agent spec watches %+v at price %+v; want no spot watch and the on-demand price", as.Spot, as.Idle)
	}

	creates := w.si.CallCount("cloudformation:CreateStack")
	if _, err := w.be.Up(ctx, spec, w.events.add); err != nil {
		t.Fatal(err)
	}
	if w.si.CallCount("cloudformation:CreateStack") != creates || w.si.CallCount("cloudformation:UpdateStack") != 0 {
		t.Errorf("a second up changed the fallen-back stack: %v", w.si.Calls)
	}
}

// TestFlowSpotTrueNoCapacity: with spot: true and no spot capacity, up
// fails saying what to do, and does not fall back.
func TestFlowSpotTrueNoCapacity(t *testing.T) {
	w := newStandInWorld(t)
	if err := w.be.SiteUp(t.Context(), w.events.add); err != nil {
		t.Fatal(err)
	}
	spotSize(w.cfg, config.SpotOn)
	name := InstanceStackName("test", "alice")
	w.si.Fail[name] = awsstandin.Failure{Resource: "Instance", Type: "AWS::EC2::Instance", Reason: noSpotReason}
	creates := createsOf(w.si, name)
	_, err := w.be.Up(t.Context(), w.spec(), w.events.add)
	var serr *StackError
	if !errors.As(err, &serr) || !strings.Contains(err.Error(), "sizes.gpu.spot: prefer") || !strings.Contains(err.Error(), "There is no Spot capacity") {
		t.Fatalf("Up = %v, want the stack failure with the hint to use prefer", err)
	}
	if n := createsOf(w.si, name) - creates; n != 1 {
		t.Errorf("%d creates, want 1 (no fall back)", n)
	}
}

// TestFlowSpotReclaimed: once AWS took the spot instance and the agent
// left its record, status says so — stopped, when, where the work went —
// and the next up replaces the stack, whose instance is gone.
func TestFlowSpotReclaimed(t *testing.T) {
	w := newStandInWorld(t)
	ctx := t.Context()
	var gone atomic.Bool
	agent := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		raw, _ := w.si.Secret(SecretPrefix("test", "alice") + secretSpec)
		var as backend.AgentSpec
		json.Unmarshal([]byte(raw), &as)
		if gone.Load() || r.Header.Get("Authorization") != "Bearer "+as.ControlToken {
			http.Error(rw, "no", http.StatusBadGateway) // the load balancer, with no target
			return
		}
		rw.Write([]byte(`{"user":"alice","ready":true}`))
	}))
	t.Cleanup(agent.Close)
	w.si.Outputs[outputURL] = agent.URL + "/"
	if err := w.be.SiteUp(ctx, w.events.add); err != nil {
		t.Fatal(err)
	}
	spotSize(w.cfg, config.SpotOn)
	var rec *backend.StopRecord
	var asked atomic.Int64
	w.be.stops = func(_ context.Context, user string) (*backend.StopRecord, error) {
		asked.Add(1)
		if user != "alice" {
			t.Errorf("stop records of %q asked for", user)
		}
		return rec, nil
	}
	if srv, err := w.be.Up(ctx, w.spec(), w.events.add); err != nil || !srv.Ready {
		t.Fatalf("Up = %+v, %v", srv, err)
	}
	name := InstanceStackName("test", "alice")
	if _, _, tags, _ := w.si.Stack(name); tags[tagMarket] != "spot" {
		t.Fatalf("market %q, want spot", tags[tagMarket])
	}
	if srv, err := w.be.Status(ctx, "alice"); err != nil || srv.State != backend.Running || !srv.Ready {
		t.Errorf("Status while it runs = %+v, %v", srv, err)
	}

	// AWS takes the instance; the agent saved and left its record.
	gone.Store(true)
	taken := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	rec = &backend.StopRecord{User: "alice", Reason: backend.StopSpotReclaimed, NoticeAt: time.Now().UTC(), TakenAt: taken,
		Action: "terminate", Repo: true, Saved: true, Branch: "main", Head: "c0ffee"}
	srv, err := w.be.Status(ctx, "alice")
	want := "stopped: spot capacity reclaimed at " + taken.Format("2006-01-02 15:04:05 UTC") + "; work saved (branch main)"
	if err != nil || srv.State != backend.Stopped || !strings.HasPrefix(srv.Detail, want) {
		t.Errorf("Status after the reclaim = %s, %q, %v; want stopped, %q", srv.State, srv.Detail, err, want)
	}

	// A record from before this stack (an earlier instance's) is not this
	// one's fate.
	old := *rec
	old.NoticeAt = time.Now().Add(-24 * time.Hour)
	rec = &old
	if srv, _ := w.be.Status(ctx, "alice"); srv.State != backend.Running {
		t.Errorf("Status with an old record = %s, want running (not answering)", srv.State)
	}
	rec.NoticeAt = time.Now().UTC()

	// The next up replaces the stack.
	deletes, creates := w.si.CallCount("cloudformation:DeleteStack"), w.si.CallCount("cloudformation:CreateStack")
	upDone := make(chan error, 1)
	go func() {
		_, err := w.be.Up(ctx, w.spec(), w.events.add)
		upDone <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for w.si.CallCount("cloudformation:CreateStack") == creates {
		if time.Now().After(deadline) {
			t.Fatalf("no new stack within 30s:\n%s", w.events.text())
		}
		select {
		case err := <-upDone:
			t.Fatalf("Up ended (%v) without a new stack:\n%s", err, w.events.text())
		case <-time.After(10 * time.Millisecond):
		}
	}
	gone.Store(false) // the new instance's agent answers
	if err := <-upDone; err != nil {
		t.Fatalf("Up after the reclaim = %v", err)
	}
	if w.si.CallCount("cloudformation:DeleteStack") != deletes+1 || !strings.Contains(w.events.text(), want+"; replacing the stack") {
		t.Errorf("up did not replace the stack, saying why:\n%s", w.events.text())
	}
	if asked.Load() == 0 {
		t.Error("the stop records were never read")
	}
}

// createsOf counts the CreateStack requests for the stack name (the
// workspace stack's create is not the instance's).
func createsOf(si *awsstandin.StandIn, name string) int {
	n := 0
	for _, body := range si.CFNRequests {
		q, err := url.ParseQuery(body)
		if err == nil && q.Get("Action") == "CreateStack" && q.Get("StackName") == name {
			n++
		}
	}
	return n
}
