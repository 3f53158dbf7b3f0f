package aws

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spinbook/spinbook/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the templates")

// canaries are the secret values in testdata/created-vpc.yaml; none may
// reach a template.
var canaries = []string{"CANARY-warehouse-password-5c1e", "CANARY-git-token-77ab", "CANARY-AKID-0042", "CANARY-secret-key-9f3d", "$argon2id$"}

func loadConfig(t *testing.T, name string) *config.Config {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	cfg, err := config.Load(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rendered are the templates of each representative config.
func rendered(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, c := range []struct{ config, size string }{
		{"created-vpc", "gpu"}, {"existing-vpc", ""},
		{"shared-alb", "gpu"}, {"shared-alb-existing-vpc", ""}, {"portal", ""},
	} {
		cfg := loadConfig(t, c.config)
		site, err := TemplateJSON(SiteTemplate(cfg))
		if err != nil {
			t.Fatal(err)
		}
		p := InstanceParams{User: "alice", SizeName: c.size}
		if c.size != "" {
			p.Size = cfg.Sizes[c.size]
		}
		inst, err := TemplateJSON(InstanceTemplate(cfg, p))
		if err != nil {
			t.Fatal(err)
		}
		ws, err := TemplateJSON(WorkspaceTemplate(cfg, "alice", cfg.WorkspaceGiB(c.size)))
		if err != nil {
			t.Fatal(err)
		}
		out["site-"+c.config] = site
		out["instance-"+c.config] = inst
		out["workspace-"+c.config] = ws
	}
	return out
}

func TestTemplatesGolden(t *testing.T) {
	for name, got := range rendered(t) {
		t.Run(name, func(t *testing.T) {
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/backend/aws -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("template differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

type template struct {
	Parameters map[string]any
	Resources  map[string]struct {
		Type       string
		Properties map[string]any
		DependsOn  []string
	}
	Outputs map[string]struct {
		Value  any
		Export *struct{ Name string }
	}
}

func parse(t *testing.T, data []byte) template {
	t.Helper()
	var tpl template
	if err := json.Unmarshal(data, &tpl); err != nil {
		t.Fatal(err)
	}
	return tpl
}

var pseudo = []string{"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::StackId", "AWS::URLSuffix", "AWS::NoValue"}

// TestTemplatesResolve: every Ref, GetAtt, Sub variable and DependsOn
// names a resource, parameter or pseudo-parameter of its template, and
// every ImportValue an export of the site template or (the instance's) of
// the user's workspace template.
func TestTemplatesResolve(t *testing.T) {
	all := rendered(t)
	for name, data := range all {
		t.Run(name, func(t *testing.T) {
			tpl := parse(t, data)
			exports := map[string]bool{}
			kind, config, _ := strings.Cut(name, "-")
			from := map[string][]string{"instance": {"site", "workspace"}, "workspace": {"site"}}[kind]
			for _, f := range from {
				for _, o := range parse(t, all[f+"-"+config]).Outputs {
					if o.Export != nil {
						exports[o.Export.Name] = true
					}
				}
			}
			known := func(n string) bool {
				_, r := tpl.Resources[n]
				_, p := tpl.Parameters[n]
				return r || p || slices.Contains(pseudo, n)
			}
			var walk func(v any, vars map[string]bool)
			subVar := regexp.MustCompile(`\$\{([^!}][^}]*)\}`)
			walk = func(v any, vars map[string]bool) {
				switch v := v.(type) {
				case map[string]any:
					for k, x := range v {
						switch k {
						case "Ref":
							if !known(x.(string)) {
								t.Errorf("Ref %q resolves to nothing", x)
							}
						case "Fn::GetAtt":
							if _, ok := tpl.Resources[x.([]any)[0].(string)]; !ok {
								t.Errorf("GetAtt %v names no resource", x)
							}
						case "Fn::ImportValue":
							if s, ok := x.(string); !ok || !exports[s] {
								t.Errorf("ImportValue %v is no export of the stacks %v", x, from)
							}
						case "Fn::Sub":
							str, local := "", map[string]bool{}
							switch x := x.(type) {
							case string:
								str = x
							case []any:
								str = x[0].(string)
								for vn, vv := range x[1].(map[string]any) {
									local[vn] = true
									walk(vv, vars)
								}
							}
							for _, m := range subVar.FindAllStringSubmatch(str, -1) {
								ref, _, _ := strings.Cut(m[1], ".")
								if strings.Contains(m[1], ".") {
									if _, ok := tpl.Resources[ref]; !ok {
										t.Errorf("Sub ${%s} names no resource", m[1])
									}
								} else if !known(ref) && !local[ref] {
									t.Errorf("Sub ${%s} resolves to nothing", m[1])
								}
							}
							continue
						}
						walk(x, vars)
					}
				case []any:
					for _, x := range v {
						walk(x, vars)
					}
				}
			}
			for rn, r := range tpl.Resources {
				walk(r.Properties, nil)
				for _, d := range r.DependsOn {
					if _, ok := tpl.Resources[d]; !ok {
						t.Errorf("%s DependsOn %q, no resource", rn, d)
					}
				}
			}
			for _, o := range tpl.Outputs {
				walk(o.Value, nil)
			}
		})
	}
}

// TestEveryAllowCIDRAdmitted is the seed's bug as a regression test: its
// template had two CIDR parameters and dropped the third and fourth office.
func TestEveryAllowCIDRAdmitted(t *testing.T) {
	for _, name := range []string{"created-vpc", "existing-vpc", "shared-alb", "shared-alb-existing-vpc"} {
		t.Run(name, func(t *testing.T) {
			cfg := loadConfig(t, name)
			if len(cfg.Access.Allow) < 4 {
				t.Fatalf("the config has %d allow entries; the test needs 4", len(cfg.Access.Allow))
			}
			data, _ := TemplateJSON(SiteTemplate(cfg))
			sg := parse(t, data).Resources["AlbSecurityGroup"].Properties
			admitted := map[string]bool{}
			for _, r := range sg["SecurityGroupIngress"].([]any) {
				r := r.(map[string]any)
				cidr, _ := r["CidrIp"].(string)
				if v6, ok := r["CidrIpv6"].(string); ok {
					cidr = v6
				}
				admitted[fmt.Sprintf("%s:%v", cidr, r["FromPort"])] = true
			}
			for _, allow := range cfg.Access.Allow {
				for _, port := range listenerPorts(cfg.AWS) {
					if key := fmt.Sprintf("%s:%d", prefix(allow), port); !admitted[key] {
						t.Errorf("access.allow %s is not admitted on port %d (admitted: %v)", allow, port, admitted)
					}
				}
			}
		})
	}
}

// TestNoSecretInTemplates: no secret of the config reaches a template,
// a parameter default, an output or the user data.
func TestNoSecretInTemplates(t *testing.T) {
	for name, data := range rendered(t) {
		for _, c := range canaries {
			if strings.Contains(string(data), c) {
				t.Errorf("%s holds the secret %q", name, c)
			}
		}
	}
}

// TestHealthCheckOnAgent: the load balancer asks the agent's health port,
// never Jupyter (the front door forwards there).
func TestHealthCheckOnAgent(t *testing.T) {
	for name, data := range rendered(t) {
		if !strings.HasPrefix(name, "instance-") {
			continue
		}
		tg := parse(t, data).Resources["TargetGroup"].Properties
		if tg["HealthCheckPort"] != fmt.Sprint(healthPort) || tg["HealthCheckPath"] != "/healthz" || tg["Port"] != float64(frontPort) {
			t.Errorf("%s: target group checks port %v path %v, traffic port %v; want health %d /healthz, traffic %d",
				name, tg["HealthCheckPort"], tg["HealthCheckPath"], tg["Port"], healthPort, frontPort)
		}
		if n := tg["UnhealthyThresholdCount"].(float64); n < 5 {
			t.Errorf("%s: unhealthy after %v checks: not lenient", name, n)
		}
	}
}

// TestInstanceAdmitsOnlyALB: the instances' group takes nothing but the
// load balancers' group, on the front-door and health ports.
func TestInstanceAdmitsOnlyALB(t *testing.T) {
	for name, data := range rendered(t) {
		if !strings.HasPrefix(name, "site-") {
			continue
		}
		tpl := parse(t, data)
		if in := tpl.Resources["InstanceSecurityGroup"].Properties["SecurityGroupIngress"]; in != nil {
			t.Errorf("%s: the instance group has inline ingress %v", name, in)
		}
		ports := map[float64]bool{}
		for rn, r := range tpl.Resources {
			if r.Type != "AWS::EC2::SecurityGroupIngress" {
				continue
			}
			p := r.Properties
			if fmt.Sprint(p["GroupId"]) != fmt.Sprint(map[string]any{"Fn::GetAtt": []any{"InstanceSecurityGroup", "GroupId"}}) {
				continue
			}
			if fmt.Sprint(p["SourceSecurityGroupId"]) != fmt.Sprint(map[string]any{"Fn::GetAtt": []any{"AlbSecurityGroup", "GroupId"}}) || p["CidrIp"] != nil || p["CidrIpv6"] != nil {
				t.Errorf("%s: %s admits %v, not the load balancers' group", name, rn, p)
			}
			if p["FromPort"] != p["ToPort"] {
				t.Errorf("%s: %s admits a port range", name, rn)
			}
			ports[p["FromPort"].(float64)] = true
		}
		if len(ports) != 2 || !ports[frontPort] || !ports[healthPort] {
			t.Errorf("%s: the instance group admits ports %v, want %d and %d", name, ports, frontPort, healthPort)
		}
	}
}

// TestTaskRunsAgentAsPID1: the task runs AgentCommand with the spec
// secret in SpecEnv and without docker-init, whose environment block would
// keep the spec where a kernel reads it (/proc/1/environ); the agent is
// PID 1 and hands the spec over itself (e2e TestAWSSpecInNoProcess).
func TestTaskRunsAgentAsPID1(t *testing.T) {
	for name, data := range rendered(t) {
		if !strings.HasPrefix(name, "instance-") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			tpl := parse(t, data)
			containers := tpl.Resources["TaskDefinition"].Properties["ContainerDefinitions"].([]any)
			c := containers[0].(map[string]any)
			got := append(list(c["EntryPoint"]), list(c["Command"])...)
			// Then the load balancer's name, which only the stack knows,
			// or behind the shared one the user's name under aws.domain.
			host := `{"Fn::GetAtt":["LoadBalancer","DNSName"]}`
			switch name {
			case "instance-shared-alb", "instance-portal":
				host = "alice.notebooks.example.com"
			case "instance-shared-alb-existing-vpc":
				host = "alice.nb.example.org"
			}
			want := append(AgentCommand(), "--host", host)
			if !slices.Equal(got, want) {
				t.Errorf("the task runs %q, want %q", got, want)
			}
			if init := c["LinuxParameters"].(map[string]any)["InitProcessEnabled"]; init != false {
				t.Errorf("InitProcessEnabled is %v: docker-init would be PID 1 and keep the spec in its environment", init)
			}
			secrets := c["Secrets"].([]any)
			if len(secrets) != 1 || secrets[0].(map[string]any)["Name"] != SpecEnv {
				t.Errorf("the task's secrets are %v, want only %s", secrets, SpecEnv)
			}
			if env, ok := c["Environment"]; ok {
				t.Errorf("the task has a plain environment %v", env)
			}
		})
	}
}
