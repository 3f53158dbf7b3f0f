package awstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/spinbook/spinbook/internal/proc/proctest"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Instances is the INSTANCE STAND-IN: the one part of a server moto cannot
// play. moto's CloudFormation makes the EC2 instance, the ECS service and
// task definition, the load balancer and its DNS name as records only;
// nothing runs. The stand-in watches moto's ECS for services with a
// desired task and does what the instance's ECS agent and the load
// balancer would:
//
//   - it reads the task definition from moto, the spec secret it names
//     (valueFrom ARN:::VERSION) from moto's Secrets Manager, as ECS does
//     with the execution role, and runs the container's command with the
//     agent binary given as its entrypoint, as a local process, the spec in
//     the variable the task definition names;
//   - the paths and ports of the container become a directory and free
//     loopback ports of the test (the workspace, like the instance's
//     Docker volume, lives as long as the EC2 instance in moto);
//   - the agent's output goes to moto's CloudWatch Logs, to the task
//     definition's awslogs group and stream PREFIX/CONTAINER/TASK;
//   - a new task definition replaces the task (stop, start: the service's
//     MaximumPercent 100); a service that is gone stops it (SIGTERM);
//   - the load balancers: an HTTP proxy (Proxy, HTTPClient, ProxyEnv) that
//     sends a request for a load balancer's DNS name to the agent whose
//     task was given that name (--host), as the ALB would, with
//     X-Forwarded-For; a name with no task gets 503, as from an ALB with no
//     healthy target.
//
// It does not restart a task that exits by itself (an idle stop), which
// ECS would do until the stack is gone.
type Instances struct {
	m    *AWS
	opts InstanceOptions
	dir  string
	lb   *httptest.Server

	mu    sync.Mutex
	tasks map[string]*Task // by service ARN
	hosts map[string]*Task // by load balancer DNS name
	errs  []string

	cancel context.CancelFunc
	done   chan struct{}
}

// InstanceOptions say how tasks run.
type InstanceOptions struct {
	// Agent is the spinbook binary the tasks run as their entrypoint
	// (backendtest.BuildAgent, or the e2e tests' build).
	Agent string
	// Env is added to every task's environment after the AWS settings.
	Env []string
	// Credentials gives the AWS environment of a task from its task role's
	// ARN, as the container credentials endpoint would (e.g. EnvAs with a
	// key of that role's); nil: m.Env().
	Credentials func(taskRoleARN string) []string
	// JupyterCommand, when set, is the Jupyter the agents start (the
	// spec's jupyter_command): the image's, which the stand-in does not
	// run.
	JupyterCommand []string
}

// Task is one task the stand-in runs.
type Task struct {
	User           string
	Service        string // the ECS service's ARN
	TaskDefinition string // its ARN
	TaskRole       string // the task role's ARN
	Host           string // the load balancer's DNS name (--host)
	Dir            string // the instance's directory: work/ is the workspace
	Workspace      string
	Control        string // the agent's front door, http://127.0.0.1:PORT

	cmd    *exec.Cmd
	logs   *proctest.Buffer
	exited chan struct{}
}

// Logs is the task's output so far.
func (k *Task) Logs() string { return k.logs.String() }

// Exited reports whether the agent has ended.
func (k *Task) Exited() bool {
	select {
	case <-k.exited:
		return true
	default:
		return false
	}
}

// StartInstances starts the instance stand-in on m until t ends.
func (m *AWS) StartInstances(t testing.TB, opts InstanceOptions) *Instances {
	t.Helper()
	if opts.Agent == "" {
		t.Fatal("awstest: InstanceOptions.Agent (the spinbook binary) is required")
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instances{m: m, opts: opts, dir: t.TempDir(), tasks: map[string]*Task{}, hosts: map[string]*Task{},
		cancel: cancel, done: make(chan struct{})}
	in.lb = httptest.NewServer(http.HandlerFunc(in.balance))
	go in.watch(ctx)
	t.Cleanup(func() {
		cancel()
		<-in.done
		in.mu.Lock()
		defer in.mu.Unlock()
		for _, k := range in.tasks {
			k.stop()
			if t.Failed() {
				t.Logf("instance stand-in: the task of %s:\n%s", k.User, k.logs.Tail(6000))
			}
		}
		if t.Failed() && len(in.errs) > 0 {
			t.Logf("instance stand-in: %s", strings.Join(in.errs, "\n"))
		}
		in.lb.Close()
	})
	return in
}

// Proxy is the load balancers' stand-in, as an HTTP proxy URL.
func (in *Instances) Proxy() *url.URL {
	u, _ := url.Parse(in.lb.URL)
	return u
}

// HTTPClient reaches the load balancers through the stand-in.
func (in *Instances) HTTPClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(in.Proxy())}}
}

// ProxyEnv is the environment a child process (the spinbook command) needs
// to reach the load balancers through the stand-in; loopback addresses
// (moto) are never proxied.
func (in *Instances) ProxyEnv() []string {
	return []string{"HTTP_PROXY=" + in.lb.URL, "http_proxy=" + in.lb.URL, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost"}
}

// Task returns the running (or last) task of user, or nil.
func (in *Instances) Task(user string) *Task {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, k := range in.tasks {
		if k.User == user {
			return k
		}
	}
	return nil
}

// WaitTask waits up to d for a task of user that has not exited.
func (in *Instances) WaitTask(t testing.TB, user string, d time.Duration) *Task {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if k := in.Task(user); k != nil && !k.Exited() {
			return k
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("instance stand-in: no task of %s within %s; %s", user, d, in.problems())
	return nil
}

func (in *Instances) problems() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return strings.Join(in.errs, "; ")
}

func (in *Instances) problem(format string, args ...any) {
	in.mu.Lock()
	defer in.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if len(in.errs) == 0 || in.errs[len(in.errs)-1] != msg {
		in.errs = append(in.errs, msg)
	}
}

// balance is the load balancers: by the requested name, to its task.
func (in *Instances) balance(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Hostname()
	if host == "" {
		host, _, _ = strings.Cut(r.Host, ":")
	}
	in.mu.Lock()
	k := in.hosts[host]
	in.mu.Unlock()
	if k == nil || k.Exited() {
		http.Error(w, "503 Service Temporarily Unavailable (instance stand-in: no task behind "+host+")", http.StatusServiceUnavailable)
		return
	}
	target, _ := url.Parse(k.Control)
	p := httputil.NewSingleHostReverseProxy(target)
	// The agent checks the name it is asked for: keep the load balancer's.
	director := p.Director
	p.Director = func(r *http.Request) { director(r); r.Host = host }
	// A target that does not answer (yet): 502, as from the ALB.
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "502 Bad Gateway (instance stand-in: "+err.Error()+")", http.StatusBadGateway)
	}
	p.ServeHTTP(w, r)
}

// watch follows moto's ECS until ctx ends.
func (in *Instances) watch(ctx context.Context) {
	defer close(in.done)
	cl := ecs.NewFromConfig(in.m.Config())
	sm := secretsmanager.NewFromConfig(in.m.Config())
	for {
		in.sync(ctx, cl, sm)
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sync makes the running tasks match moto's services.
func (in *Instances) sync(ctx context.Context, cl *ecs.Client, sm *secretsmanager.Client) {
	clusters, err := cl.ListClusters(ctx, &ecs.ListClustersInput{})
	if err != nil {
		if ctx.Err() == nil {
			in.problem("list clusters: %v", err)
		}
		return
	}
	want := map[string]ecstypes.Service{}
	for _, c := range clusters.ClusterArns {
		list, err := cl.ListServices(ctx, &ecs.ListServicesInput{Cluster: &c})
		if err != nil || len(list.ServiceArns) == 0 {
			continue
		}
		for i := 0; i < len(list.ServiceArns); i += 10 {
			out, err := cl.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: &c, Services: list.ServiceArns[i:min(i+10, len(list.ServiceArns))]})
			if err != nil {
				in.problem("describe services: %v", err)
				return
			}
			for _, s := range out.Services {
				if awssdk.ToString(s.Status) == "ACTIVE" && s.DesiredCount > 0 {
					want[awssdk.ToString(s.ServiceArn)] = s
				}
			}
		}
	}
	in.mu.Lock()
	var stop []*Task
	for arn, k := range in.tasks {
		if s, ok := want[arn]; !ok || awssdk.ToString(s.TaskDefinition) != k.TaskDefinition {
			stop = append(stop, k)
			delete(in.tasks, arn)
			if in.hosts[k.Host] == k {
				delete(in.hosts, k.Host)
			}
		}
	}
	in.mu.Unlock()
	for _, k := range stop {
		k.stop()
	}
	for arn, s := range want {
		in.mu.Lock()
		_, running := in.tasks[arn]
		in.mu.Unlock()
		if running {
			continue
		}
		k, err := in.start(ctx, cl, sm, s)
		if err != nil {
			in.problem("start the task of %s: %v", arn, err)
			continue
		}
		in.mu.Lock()
		in.tasks[arn] = k
		in.hosts[k.Host] = k
		in.mu.Unlock()
	}
}

// start runs the service's task as the instance would.
func (in *Instances) start(ctx context.Context, cl *ecs.Client, sm *secretsmanager.Client, s ecstypes.Service) (*Task, error) {
	td, err := cl.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: s.TaskDefinition})
	if err != nil {
		return nil, fmt.Errorf("describe task definition: %w", err)
	}
	if len(td.TaskDefinition.ContainerDefinitions) != 1 {
		return nil, fmt.Errorf("task definition %s has %d containers, want 1", awssdk.ToString(s.TaskDefinition), len(td.TaskDefinition.ContainerDefinitions))
	}
	c := td.TaskDefinition.ContainerDefinitions[0]
	k := &Task{
		Service:        awssdk.ToString(s.ServiceArn),
		TaskDefinition: awssdk.ToString(s.TaskDefinition),
		TaskRole:       awssdk.ToString(td.TaskDefinition.TaskRoleArn),
		logs:           &proctest.Buffer{},
		exited:         make(chan struct{}),
	}
	args := append(append([]string(nil), c.EntryPoint...), c.Command...)
	if len(args) < 2 {
		return nil, fmt.Errorf("container %s has no command", awssdk.ToString(c.Name))
	}
	for i, a := range args {
		if a == "--host" && i+1 < len(args) {
			k.Host = args[i+1]
		}
	}
	env := os.Environ()
	for _, sec := range c.Secrets {
		arn, version, err := splitValueFrom(awssdk.ToString(sec.ValueFrom))
		if err != nil {
			return nil, err
		}
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn, VersionId: version})
		if err != nil {
			return nil, fmt.Errorf("the secret of %s: %w", awssdk.ToString(sec.Name), err)
		}
		spec, user, err := in.localSpec(k, awssdk.ToString(out.SecretString))
		if err != nil {
			return nil, err
		}
		k.User = user
		env = append(env, awssdk.ToString(sec.Name)+"="+spec)
	}
	if k.User == "" {
		return nil, fmt.Errorf("task definition %s has no agent spec secret", k.TaskDefinition)
	}
	if in.opts.Credentials != nil {
		env = append(env, in.opts.Credentials(k.TaskRole)...)
	} else {
		env = append(env, in.m.Env()...)
	}
	env = append(append(env, "HOME="+filepath.Join(k.Dir, "home")), in.opts.Env...)

	args[0] = in.opts.Agent // the binary the instance bind-mounts
	k.cmd = exec.Command(args[0], args[1:]...)
	k.cmd.Env = env
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	shipper := newLogShipper(in.m, c, k.User)
	k.cmd.Stdout, k.cmd.Stderr = teeWriter{k.logs, shipper}, teeWriter{k.logs, shipper}
	if err := k.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the agent: %w", err)
	}
	go func() {
		k.cmd.Wait()
		shipper.close()
		close(k.exited)
	}()
	return k, nil
}

// localSpec turns the task's spec into one for a local process: the
// container's paths under the instance's directory, free loopback ports,
// and the release command run by the agent binary given.
func (in *Instances) localSpec(k *Task, raw string) (spec, user string, err error) {
	var s map[string]any
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", "", fmt.Errorf("the agent spec secret is not JSON: %w", err)
	}
	user, _ = s["user"].(string)
	if user == "" {
		return "", "", fmt.Errorf("the agent spec names no user")
	}
	// One directory per user's workspace volume (the EBS volume the
	// instance stack attaches, kept across down and up), else per EC2
	// instance: its root disk.
	sum := sha256.Sum256([]byte(k.Service))
	k.Dir = filepath.Join(in.dir, user+"-"+hex.EncodeToString(sum[:6]))
	if vol := in.workspaceVolume(user); vol != "" {
		k.Dir = filepath.Join(in.dir, user+"-"+vol)
	}
	k.Workspace = filepath.Join(k.Dir, "work")
	for _, d := range []string{k.Workspace, filepath.Join(k.Dir, "run"), filepath.Join(k.Dir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return "", "", err
	}
	s["workspace"] = k.Workspace
	s["state_dir"] = filepath.Join(k.Dir, "run")
	s["credentials_dir"] = filepath.Join(k.Dir, "home")
	s["cache_dir"] = filepath.Join(k.Dir, "home", ".cache", "spinbook")
	s["bundle_dir"] = filepath.Join(k.Workspace, ".git", "spinbook-bundles")
	s["listen"] = "127.0.0.1"
	s["front_port"], s["health_port"] = ports[0], ports[1]
	if idle, ok := s["idle"].(map[string]any); ok {
		if rel, ok := idle["release"].([]any); ok && len(rel) > 0 {
			rel[0] = in.opts.Agent
		}
	}
	if len(in.opts.JupyterCommand) > 0 {
		s["jupyter_command"] = in.opts.JupyterCommand
	}
	k.Control = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	out, err := json.Marshal(s)
	return string(out), user, err
}

// splitValueFrom splits an ECS secret reference ARN:JSON-KEY:STAGE:VERSION
// into the secret's ARN and version (nil: the current one).
func splitValueFrom(v string) (arn string, version *string, err error) {
	parts := strings.Split(v, ":")
	switch {
	case len(parts) == 7:
		return v, nil, nil
	case len(parts) == 10 && parts[7] == "" && parts[8] == "":
		if parts[9] != "" {
			version = &parts[9]
		}
		return strings.Join(parts[:7], ":"), version, nil
	}
	return "", nil, fmt.Errorf("secret reference %q: want ARN or ARN:::VERSION-ID", v)
}

// Stop ends the task as the end of its instance would: SIGTERM, then
// SIGKILL after the grace (a test's spot reclaim). The service keeps it
// as it is: ended, not started again.
func (k *Task) Stop() { k.stop() }

// stop ends the task as ECS does: SIGTERM, then SIGKILL after the grace.
func (k *Task) stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.exited
	}
}

// Jupyter returns Debian's notebook 6 (scripts/setup --for-tests installs
// it), the quickest Jupyter to start, as InstanceOptions.JupyterCommand; it
// skips t without it (fails it when CI is set).
func Jupyter(t testing.TB) []string {
	t.Helper()
	const cmd = "/usr/bin/jupyter-notebook"
	if _, err := os.Stat(cmd); err != nil {
		msg := cmd + " is missing: apt-get install jupyter-notebook python3-ipykernel (scripts/setup --for-tests does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return []string{cmd}
}

func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// workspaceVolume is the id of user's workspace volume in moto (what the
// workspace stack exports as spinbook-SITE-USER-Workspace-VolumeId), or ""
// when there is none.
func (in *Instances) workspaceVolume(user string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := cloudformation.NewFromConfig(in.m.Config()).ListExports(ctx, &cloudformation.ListExportsInput{})
	if err != nil {
		return ""
	}
	for _, e := range out.Exports {
		if strings.HasSuffix(awssdk.ToString(e.Name), "-"+user+"-Workspace-VolumeId") {
			return awssdk.ToString(e.Value)
		}
	}
	return ""
}
