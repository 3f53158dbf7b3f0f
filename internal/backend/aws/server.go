package aws

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// Up implements backend.Backend: it stores the spec as a secret, then
// creates or updates user's stack and waits until Jupyter answers behind
// the load balancer. A stack that already runs this very deployment is
// returned as it is.
func (a *AWS) Up(ctx context.Context, spec backend.Spec, progress func(backend.Event)) (backend.Server, error) {
	if err := ctx.Err(); err != nil {
		return backend.Server{}, fmt.Errorf("up: %w", context.Cause(ctx))
	}
	if err := a.checkCredentials(ctx); err != nil {
		return backend.Server{}, err
	}
	p := InstanceParams{User: spec.User, SizeName: spec.Size}
	if spec.Size != "" {
		s, err := a.cfg.LookupSize(spec.Size)
		if err != nil {
			return backend.Server{}, err
		}
		p.Size = s
	}
	if a.cfg.AWS.CertificateARN == "" {
		progress(backend.Event{Message: "WARNING: no aws.certificate_arn: the load balancer serves PLAIN HTTP, so the password and the notebooks cross the internet unencrypted; set a certificate"})
	}
	site, err := a.describe(ctx, SiteStackName(a.site()))
	if err != nil {
		return backend.Server{}, err
	}
	if err := a.checkSite(site); err != nil {
		return backend.Server{}, err
	}
	stackRole := output(site, outputStackRole)
	if stackRole == "" {
		return backend.Server{}, fmt.Errorf("the site stack %s has no %s output: run `spinbook site up` to bring it up to date first", SiteStackName(a.site()), outputStackRole)
	}
	bin, err := a.ensureAgent(ctx, output(site, outputAgentBucket), progress)
	if err != nil {
		return backend.Server{}, err
	}
	if a.cfg.AWS.SharedLoadBalancer {
		if output(site, exportListener) == "" {
			return backend.Server{}, fmt.Errorf("the site stack %s has no shared load balancer yet (aws.shared_load_balancer is new): run `spinbook site up` first", SiteStackName(a.site()))
		}
		if p.RulePriority, err = a.rulePriority(ctx, spec.User); err != nil {
			return backend.Server{}, err
		}
	}
	name := InstanceStackName(a.site(), spec.User)
	if p.spot() && p.Size.SpotMode == config.SpotPrefer {
		// A server that fell back to on-demand stays so until `down`:
		// spot again would replace its instance.
		if st, err := a.describe(ctx, name); err != nil {
			return backend.Server{}, err
		} else if st != nil && tag(st, tagMarket) == "on-demand" {
			p.OnDemand = true
		}
	}
	srv, err := a.upInstance(ctx, site, spec, p, bin, stackRole, progress)
	if err != nil && p.spot() && isSpotCapacity(err) {
		if p.Size.SpotMode != config.SpotPrefer {
			return srv, noSpotCapacity(p, err)
		}
		progress(backend.Event{Message: fmt.Sprintf("AWS has no spot capacity for %s now (%s): starting the server ON-DEMAND instead, "+
			"at the on-demand price (sizes.%s.spot: prefer); it stays on-demand until `spinbook down`",
			p.instanceType(), spotReason(err), spec.Size)})
		p.OnDemand = true
		srv, err = a.upInstance(ctx, site, spec, p, bin, stackRole, progress)
	}
	return srv, err
}

// upInstance makes user's stack run p, as Up describes.
func (a *AWS) upInstance(ctx context.Context, site *types.Stack, spec backend.Spec, p InstanceParams, bin agentBinary, stackRole string, progress func(backend.Event)) (backend.Server, error) {
	tpl := InstanceTemplate(a.cfg, p)
	body, err := templateBody(tpl)
	if err != nil {
		return backend.Server{}, err
	}
	as, err := a.agentSpec(spec, p)
	if err != nil {
		return backend.Server{}, err
	}
	digest := deployDigest(body, a.cfg.Image, bin.sum, spec.Size, as)
	machine, err := machineDigest(tpl)
	if err != nil {
		return backend.Server{}, err
	}
	name := InstanceStackName(a.site(), spec.User)

	st, err := a.describe(ctx, name)
	if err != nil {
		return backend.Server{}, err
	}
	running := st != nil && (st.StackStatus == types.StackStatusCreateComplete || st.StackStatus == types.StackStatusUpdateComplete ||
		st.StackStatus == types.StackStatusUpdateRollbackComplete)
	if running && tag(st, tagDeployDigest) == digest {
		srv, err := a.server(ctx, st, true)
		if err != nil {
			return backend.Server{}, err
		}
		if ws, err := a.workspaceOf(ctx, spec.User); err == nil {
			srv.Volume = a.volume(ws)
		}
		if srv.Ready {
			return srv, nil
		}
		if rec := a.reclaimed(ctx, st); rec != nil {
			// AWS took the spot instance: the stack names an instance
			// that is gone. A new stack gets a new one (and the
			// workspace volume, which the old one let go).
			progress(backend.Event{Message: rec.Summary() + "; replacing the stack for a new instance"})
			if err := a.deleteStack(ctx, name, progress); err != nil {
				return backend.Server{}, err
			}
			st, running = nil, false
		} else {
			progress(backend.Event{Message: "the stack runs this configuration already; waiting for Jupyter"})
			return a.waitReady(ctx, srv, progress)
		}
	}
	if running && tag(st, tagMachineDigest) != machine {
		// An update would replace the instance, and the new one could not
		// attach the workspace the old one holds until it is gone.
		return backend.Server{}, fmt.Errorf("%s's server runs on an instance this up would replace (another size, or another spinbook's boot script), which cannot happen while it holds the workspace volume: run `spinbook down`, then `spinbook up` again; the workspace is kept", spec.User)
	}
	ws, err := a.ensureWorkspace(ctx, site, spec.User, a.cfg.WorkspaceGiB(spec.Size), stackRole, progress)
	if err != nil {
		return backend.Server{}, err
	}

	data, err := json.Marshal(as)
	if err != nil {
		return backend.Server{}, fmt.Errorf("encode agent spec: %w", err)
	}
	tags := baseTags(a.site())
	tags[tagUser] = spec.User
	progress(backend.Event{Message: fmt.Sprintf("storing the server's secrets in Secrets Manager under %s", SecretPrefix(a.site(), spec.User))})
	specSecret, err := a.putSecret(ctx, SecretPrefix(a.site(), spec.User)+secretSpec, string(data), tags)
	if err != nil {
		return backend.Server{}, err
	}
	if _, err := a.putSecret(ctx, SecretPrefix(a.site(), spec.User)+secretControlToken, as.ControlToken, tags); err != nil {
		return backend.Server{}, err
	}

	tags[tagRole] = "instance"
	tags[tagInstanceType] = p.instanceType()
	tags[tagAccessDigest] = spec.AccessDigest
	tags[tagDeployDigest] = digest
	tags[tagMarket] = p.market()
	tags[tagMachineDigest] = machine
	if spec.Size != "" {
		tags[tagSize] = spec.Size
	}
	if p.RulePriority > 0 {
		tags[tagRulePriority] = strconv.Itoa(p.RulePriority)
	}
	st, err = a.deploy(ctx, deployment{
		name: name,
		body: body,
		params: map[string]string{
			paramImage:         a.cfg.Image,
			paramAgentKey:      bin.key,
			paramAgentSHA256:   bin.sum,
			paramSpecSecretARN: specSecret.ARN,
			paramSpecVersionID: specSecret.VersionID,
		},
		tags:       tags,
		keepFailed: spec.KeepFailed,
		roleARN:    stackRole,
		// A running instance keeps its AMI and agent: a newer one would
		// replace it, workspace and all. `down` and `up` take them up.
		keep: []string{paramImageID, paramAgentKey, paramAgentSHA256},
	}, progress)
	if err != nil {
		return backend.Server{}, err
	}
	srv, err := a.server(ctx, st, false)
	if err != nil {
		return backend.Server{}, err
	}
	srv.ControlToken = as.ControlToken
	srv.Volume = a.volume(ws)
	srv.Workspace = describeVolume(srv.Volume)
	srv, err = a.waitReady(ctx, srv, progress)
	srv.Started = true
	return srv, err
}

// agentSpec fills in where things live in the container.
func (a *AWS) agentSpec(spec backend.Spec, p InstanceParams) (backend.AgentSpec, error) {
	as, err := spec.AgentSpec()
	if err != nil {
		return as, err
	}
	as.User = spec.User
	as.Workspace = workspacePath
	as.StateDir = runDir
	as.CredentialsDir = containerHome
	as.CacheDir = path.Join(containerHome, ".cache", "spinbook")
	as.BundleDir = path.Join(workspacePath, ".git", "spinbook-bundles")
	// ECS kills the task stopTimeout after its SIGTERM.
	as.StopGrace = stopTimeoutSec * time.Second
	as.InheritListeners = false
	as.Listen = "0.0.0.0"
	as.FrontPort = frontPort
	as.HealthPort = healthPort
	// The agent sees the load balancer as the peer: it believes its
	// X-Forwarded-For, and TLS ends there.
	as.TrustedProxies = trustedProxies(a.cfg)
	as.BehindTLS = a.cfg.AWS.CertificateARN != ""
	// An idle stop ends with the agent deleting this stack, with the
	// server's own task role (roles.go); the binary is the one the task
	// runs as its entrypoint.
	idle := backend.Idle{}
	if as.Idle != nil {
		idle = *as.Idle
	}
	idle.Release = ReleaseCommand(a.site(), spec.User, a.sdk.Region)
	if idle.SpotPrice && !p.spot() {
		// A spot size that fell back to on-demand costs on-demand.
		idle.PricePerHour, idle.SpotPrice = idle.OnDemandPerHour, false
	}
	as.Idle = &idle
	as.Spot = spotWatch(p)
	if as.ControlToken == "" {
		// Readiness is asked through the control API: a spec without a
		// token (the command line always makes one) gets one here.
		as.ControlToken = requestToken() + requestToken()
	}
	return as, nil
}

// ReleaseCommand is what the agent of user's server runs after an idle
// stop: the hidden `spinbook aws delete-own-stack`, from the agent binary
// the task runs, for its own stack.
func ReleaseCommand(site, user, region string) []string {
	return []string{agentMount + "/spinbook", "aws", "delete-own-stack", "--stack", InstanceStackName(site, user), "--region", region}
}

// deployDigest sums up what a stack runs, the control token left out, so
// that a second `up` of the same configuration changes nothing.
func deployDigest(body, image, agentSum, size string, as backend.AgentSpec) string {
	as.ControlToken = ""
	spec, _ := json.Marshal(as)
	h := sha256.New()
	for _, s := range []string{body, image, agentSum, size, string(spec)} {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// waitReady polls the agent's control API through the load balancer until
// Jupyter answers. A machine outside access.allow is refused by the agent:
// then the server is reported running with readiness unknown.
func (a *AWS) waitReady(ctx context.Context, srv backend.Server, progress func(backend.Event)) (backend.Server, error) {
	progress(backend.Event{Message: fmt.Sprintf("waiting for Jupyter behind %s", srv.URL)})
	for n := 0; ; n++ {
		ready, detail := a.ready(ctx, srv)
		if ready {
			srv.Ready, srv.Detail = true, ""
			return srv, nil
		}
		if detail != "" {
			srv.Detail = detail
			progress(backend.Event{Message: detail})
			return srv, nil
		}
		if err := a.sleep(ctx, n); err != nil {
			return srv, fmt.Errorf("wait for Jupyter behind %s: %w", srv.URL, err)
		}
	}
}

// ready asks the agent whether Jupyter answers; detail is set when the
// answer cannot come from this machine.
func (a *AWS) ready(ctx context.Context, srv backend.Server) (ready bool, detail string) {
	if srv.URL == "" || srv.ControlToken == "" {
		return false, "no URL or control token yet"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(srv.URL, "/")+"/spinbook/api/status", nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+srv.ControlToken)
	resp, err := a.http.Do(req)
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &hostErr) || errors.As(err, &verifyErr):
		return false, fmt.Sprintf("the stack is up, but the load balancer's certificate does not match %s (%v): point a DNS name the certificate covers at the load balancer and open that", srv.URL, err)
	case a.dnsMissing(err, req.URL.Hostname()) != "":
		return false, a.dnsMissing(err, req.URL.Hostname())
	case err != nil:
		return false, ""
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var st struct {
			Ready bool `json:"ready"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) == nil {
			return st.Ready, ""
		}
	case http.StatusForbidden:
		return false, "the stack is up, but the agent refuses this machine (not in access.allow), so readiness cannot be checked from here"
	}
	return false, ""
}

// Down implements backend.Backend: it deletes user's stack and waits,
// then the user's secrets. The command line saved the work first; the
// workspace volume is kept (Purge deletes it).
func (a *AWS) Down(ctx context.Context, user string, progress func(backend.Event)) error {
	if err := a.checkCredentials(ctx); err != nil {
		return err
	}
	if err := a.deleteStack(ctx, InstanceStackName(a.site(), user), progress); err != nil {
		return err
	}
	for _, s := range []string{secretSpec, secretControlToken} {
		if err := a.deleteSecret(ctx, SecretPrefix(a.site(), user)+s); err != nil {
			return err
		}
	}
	return nil
}

// Status implements backend.Backend.
func (a *AWS) Status(ctx context.Context, user string) (backend.Server, error) {
	if err := a.checkCredentials(ctx); err != nil {
		return backend.Server{}, err
	}
	st, err := a.describe(ctx, InstanceStackName(a.site(), user))
	if err != nil {
		return backend.Server{}, err
	}
	ws, err := a.workspaceOf(ctx, user)
	if err != nil {
		return backend.Server{}, err
	}
	if st == nil {
		srv := backend.Server{User: user, Backend: a.Name(), State: backend.Absent, Volume: a.volume(ws)}
		if srv.Volume != nil {
			srv.Workspace = describeVolume(srv.Volume)
			srv.Detail = fmt.Sprintf("no server; its workspace %s is kept (about $%.2f a month): `spinbook up` brings the server back on it, `spinbook down --purge` deletes it",
				srv.Volume.ID, *srv.Volume.MonthlyCost)
		}
		return srv, nil
	}
	srv, err := a.server(ctx, st, true)
	if srv.Volume = a.volume(ws); srv.Volume != nil {
		srv.Workspace = describeVolume(srv.Volume)
	}
	return srv, err
}

// List implements backend.Backend: every instance stack of the site,
// with its workspace volume.
func (a *AWS) List(ctx context.Context) ([]backend.Server, error) {
	if err := a.checkCredentials(ctx); err != nil {
		return nil, err
	}
	instances, workspaces, err := a.stacks(ctx)
	if err != nil {
		return nil, err
	}
	var out []backend.Server
	for _, st := range instances {
		srv, err := a.server(ctx, st, false)
		if err != nil {
			return nil, err
		}
		if v := a.volume(workspaces[srv.User]); v != nil {
			srv.Volume, srv.Workspace = v, describeVolume(v)
		}
		out = append(out, srv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// stacks returns the site's instance stacks and its workspaces, by user.
func (a *AWS) stacks(ctx context.Context) (instances []*types.Stack, workspaces map[string]*workspace, err error) {
	workspaces = map[string]*workspace{}
	p := cloudformation.NewDescribeStacksPaginator(a.cf, &cloudformation.DescribeStacksInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list stacks: %w", err)
		}
		for i := range page.Stacks {
			st := &page.Stacks[i]
			if tag(st, tagManaged) != managedBy || tag(st, tagSite) != a.site() ||
				st.StackStatus == types.StackStatusDeleteComplete || config.ValidateUser(tag(st, tagUser)) != nil {
				continue
			}
			switch tag(st, tagRole) {
			case "workspace":
				workspaces[tag(st, tagUser)] = workspaceFrom(st)
			case "instance":
				instances = append(instances, st)
			}
		}
	}
	return instances, workspaces, nil
}

// server describes stack st; with probe, it also reads the control token
// and asks the agent whether Jupyter is ready.
func (a *AWS) server(ctx context.Context, st *types.Stack, probe bool) (backend.Server, error) {
	user := tag(st, tagUser)
	srv := backend.Server{
		User:         user,
		Backend:      a.Name(),
		URL:          output(st, outputURL),
		Workspace:    workspacePath + " (on the user's own EBS volume, kept across down and up)",
		AccessDigest: tag(st, tagAccessDigest),
	}
	if st.CreationTime != nil {
		srv.StartedAt = st.CreationTime.UTC().Truncate(time.Second)
	}
	switch status := st.StackStatus; {
	case status == types.StackStatusCreateComplete || status == types.StackStatusUpdateComplete || status == types.StackStatusUpdateRollbackComplete:
		srv.State = backend.Running
	case strings.HasSuffix(string(status), "_IN_PROGRESS"):
		srv.State = backend.Running
		srv.Detail = fmt.Sprintf("stack %s is %s", awssdk.ToString(st.StackName), status)
		return srv, nil
	default:
		srv.State = backend.Failed
		srv.Detail = fmt.Sprintf("stack %s is %s (%s); run `spinbook up` to try again, or `spinbook down` to remove it",
			awssdk.ToString(st.StackName), status, awssdk.ToString(st.StackStatusReason))
		return srv, nil
	}
	if !probe {
		return srv, nil
	}
	token, err := a.getSecret(ctx, SecretPrefix(a.site(), user)+secretControlToken)
	if err != nil {
		return srv, err
	}
	srv.ControlToken = token
	ready, detail := a.ready(ctx, srv)
	srv.Ready = ready
	if rec := a.reclaimed(ctx, st); !ready && rec != nil {
		srv.State, srv.Detail = backend.Stopped, rec.Summary()+"; `spinbook up` starts it again"
		return srv, nil
	}
	if !ready {
		srv.Detail = detail
		if detail == "" {
			srv.Detail = "Jupyter is starting or not answering"
		}
	}
	return srv, nil
}
