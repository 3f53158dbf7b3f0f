package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the errors the files produce")

// hermetic points $HOME and the XDG variables at a temporary directory, so
// that defaults do not depend on the machine running the tests.
func hermetic(t *testing.T) (home string) {
	t.Helper()
	home = t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("SPINBOOK_CONFIG", "")
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = os.Geteuid })
	return home
}

func TestInvalid(t *testing.T) {
	hermetic(t)
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d files in testdata/invalid, want at least 12", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data, "spinbook.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error is %T, want *config.Error: %v", err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/config -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("error text differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestValid(t *testing.T) {
	hermetic(t)
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no files in testdata/valid")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			c, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if c.Path != file {
				t.Errorf("Path = %q, want %q", c.Path, file)
			}
		})
	}
}

func TestLoadFull(t *testing.T) {
	hermetic(t)
	c, err := Load("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Backend: "local",
		Access: Access{
			Allow:          []string{"203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "::1"},
			TrustedProxies: []string{"10.0.0.0/8"},
			Hosts:          []string{"notebooks.example.com", "lab.example.com"},
			PasswordHash:   "$argon2id$v=19$m=65536,t=3,p=2$ihU4ZRXtPa7Lm1BvveACZg$glF1PdrNL7TDnXzpObHk5yAnB8gK5yONk6oI/lo9pRM",
			AllowPrefixes: []netip.Prefix{
				netip.MustParsePrefix("203.0.113.0/24"),
				netip.MustParsePrefix("198.51.100.7/32"),
				netip.MustParsePrefix("2001:db8::/32"),
				netip.MustParsePrefix("::1/128"),
			},
			TrustedPrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		},
		Jupyter: Jupyter{Command: Command{"jupyter", "lab", "--no-browser"}},
		Local: Local{
			Listen:   "0.0.0.0",
			Ports:    "9000-9001",
			StateDir: "/var/lib/spinbook",
			Env:      []string{"VIRTUAL_ENV", "LD_LIBRARY_PATH"},
			PortLo:   9000,
			PortHi:   9001,
		},
		Image:      DefaultImage,
		Docker:     defaultDocker(),
		AWS:        AWS{Site: "main", WorkspaceSize: "50GiB", WorkspaceGiB: 50},
		Kubernetes: defaultKubernetes(),
		Idle:       Idle{StopAfter: "2h", MaxAge: "off", WarnBefore: "10m"},
		Path:       "testdata/valid/full.yaml",
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadCommandString(t *testing.T) {
	home := hermetic(t)
	c, err := Load("testdata/valid/command-string.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Command{"jupyter", "notebook"}, c.Jupyter.Command); diff != "" {
		t.Errorf("Command (-want +got):\n%s", diff)
	}
	if want := filepath.Join(home, "spinbook"); c.Local.StateDir != want {
		t.Errorf("StateDir = %q, want %q (~ expanded)", c.Local.StateDir, want)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "spinbook.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestEmptyIsDefault(t *testing.T) {
	hermetic(t)
	c, err := Parse(nil, "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Path = "spinbook.yaml"
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("Parse(empty) differs from Default() (-want +got):\n%s", diff)
	}
}

func TestDefault(t *testing.T) {
	home := hermetic(t)
	c := Default()
	want := &Config{
		Backend: "local",
		Access: Access{
			Allow:         []string{"127.0.0.0/8", "::1/128"},
			AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		},
		Local: Local{
			Listen:   "127.0.0.1",
			Ports:    "8800-8899",
			StateDir: filepath.Join(home, ".local", "state", "spinbook"),
			PortLo:   8800,
			PortHi:   8899,
		},
		Image:      DefaultImage,
		Docker:     defaultDocker(),
		AWS:        AWS{Site: "main", WorkspaceSize: "50GiB", WorkspaceGiB: 50},
		Kubernetes: defaultKubernetes(),
		Idle:       Idle{StopAfter: "2h", MaxAge: "off", WarnBefore: "10m"},
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("Default() (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestDefaultStateDirXDG(t *testing.T) {
	hermetic(t)
	xdg := t.TempDir()
	t.Setenv("XDG_STATE_HOME", xdg)
	if got, want := Default().Local.StateDir, filepath.Join(xdg, "spinbook"); got != want {
		t.Errorf("StateDir = %q, want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	if got := Default().Local.StateDir; !filepath.IsAbs(got) || strings.Contains(got, "relative") {
		t.Errorf("StateDir = %q with a relative $XDG_STATE_HOME, want it ignored", got)
	}
}

// TestDefaultStateDirRoot: root's default state dir lets the servers'
// accounts pass (/root does not), unless an older one exists in ~.
func TestDefaultStateDirRoot(t *testing.T) {
	home := hermetic(t)
	geteuid = func() int { return 0 }
	if got := Default().Local.StateDir; got != "/var/lib/spinbook" {
		t.Errorf("root's StateDir = %q, want /var/lib/spinbook", got)
	}
	old := filepath.Join(home, ".local", "state", "spinbook")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := Default().Local.StateDir; got != old {
		t.Errorf("root's StateDir with an older one in ~ = %q, want %q", got, old)
	}
	xdg := t.TempDir()
	t.Setenv("XDG_STATE_HOME", xdg)
	if got := Default().Local.StateDir; got != filepath.Join(xdg, "spinbook") {
		t.Errorf("root's StateDir with $XDG_STATE_HOME = %q", got)
	}
}

func TestTemplate(t *testing.T) {
	hermetic(t)
	c, err := Parse([]byte(Template), "spinbook.yaml")
	if err != nil {
		t.Fatalf("Parse(Template): %v", err)
	}
	want := Default()
	want.Path = "spinbook.yaml"
	want.Access.TrustedProxies = []string{} // the template writes [] explicitly
	want.Jupyter.Command = Command{}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateComparable(netip.Prefix{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Template differs from the defaults (-want +got):\n%s", diff)
	}
	for _, key := range []string{"backend:", "allow:", "trusted_proxies:", "password_hash:", "spinbook password", "command:", "listen:", "ports:", "state_dir:"} {
		if !strings.Contains(Template, key) {
			t.Errorf("Template does not mention %q", key)
		}
	}
}

// TestTemplateNamesEveryBackend: the comment on backend in what `spinbook
// init` writes names every backend this build has, and none as to come.
func TestTemplateNamesEveryBackend(t *testing.T) {
	before, _, ok := strings.Cut(Template, "\nbackend:")
	if !ok {
		t.Fatal("the template has no backend: key")
	}
	comment := before[strings.LastIndex(before, "\n\n")+1:]
	for _, b := range backends {
		if !strings.Contains(comment, fmt.Sprintf("%q", b)) {
			t.Errorf("the comment on backend does not name %q:\n%s", b, comment)
		}
	}
	if strings.Contains(comment, "later") {
		t.Errorf("the comment on backend says a backend comes later:\n%s", comment)
	}
}

// TestTemplateExamples uncomments each "# key: value" example in the
// template, one at a time, and checks that the result still parses, so
// that the examples stay true.
func TestTemplateExamples(t *testing.T) {
	hermetic(t)
	lines := strings.Split(Template, "\n")
	n := 0
	for i, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		indent := line[:len(line)-len(trimmed)]
		rest, ok := strings.CutPrefix(trimmed, "# ")
		if !ok || !strings.Contains(rest, ": ") && !strings.HasSuffix(rest, ":") || strings.Contains(rest, "...") {
			continue
		}
		key, _, _ := strings.Cut(rest, ":")
		if strings.ContainsAny(key, " `") {
			continue // prose, not an example
		}
		n++
		// Drop the default line for the same key, then uncomment the
		// example and the indented "#   - item" lines under it.
		edited := make([]string, 0, len(lines))
		for j, l := range lines {
			if j != i && strings.HasPrefix(l, indent+key+":") {
				continue
			}
			edited = append(edited, l)
		}
		for j := range edited {
			if edited[j] == line {
				edited[j] = indent + rest
				for k := j + 1; k < len(edited) && strings.HasPrefix(edited[k], indent+"#   "); k++ {
					edited[k] = indent + strings.TrimPrefix(edited[k], indent+"# ")
				}
			}
		}
		t.Run(key+"_"+strings.TrimSpace(rest[len(key)+1:]), func(t *testing.T) {
			c, err := Parse([]byte(strings.Join(edited, "\n")), "spinbook.yaml")
			if err != nil {
				t.Fatalf("template with %q uncommented: %v", rest, err)
			}
			def := Default()
			def.Path = c.Path
			if cmp.Equal(def, c, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateComparable(netip.Prefix{}), cmpopts.EquateEmpty()) {
				t.Errorf("template with %q uncommented gives the defaults; the example was not applied", rest)
			}
		})
	}
	if n < 4 {
		t.Errorf("found %d examples in the template, want at least 4", n)
	}
}

func TestErrorSortedAndUnwrapped(t *testing.T) {
	hermetic(t)
	_, err := Parse([]byte("local:\n  ports: 1-1\nbogus: 1\naccess:\n  allow: [x]\n"), "f.yaml")
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want *Error", err)
	}
	var lines []int
	for _, p := range cerr.Problems {
		lines = append(lines, p.Line)
	}
	if diff := cmp.Diff([]int{2, 3, 5}, lines); diff != "" {
		t.Errorf("problem lines (-want +got):\n%s", diff)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Path != "local.ports" {
		t.Errorf("errors.As(*Problem) = %v, want the local.ports problem", p)
	}
}

func TestValidateWithoutFile(t *testing.T) {
	hermetic(t)
	c := Default()
	c.Local.Listen = "nowhere"
	c.Access.Allow = []string{"10.0.0.1/8"}
	err := c.Validate()
	want := `invalid configuration:
  access.allow[0]: "10.0.0.1/8" has host bits set: did you mean 10.0.0.0/8 (the network) or 10.0.0.1/32 (one address)?
  local.listen: "nowhere" is not an IP address (examples: 127.0.0.1, or 0.0.0.0 for every interface)`
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v\nwant %s", err, want)
	}
}

func TestValidateNoHome(t *testing.T) {
	hermetic(t)
	t.Setenv("HOME", "")
	c := new(Config)
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "local.state_dir: not set, and no default") {
		t.Errorf("Validate() without $HOME = %v, want a local.state_dir problem", err)
	}
}

func TestPasswordHashNotEchoed(t *testing.T) {
	hermetic(t)
	for _, hash := range []string{
		"$argon2id$v=19$m=65536,t=3,p=2$ihU4ZRXtPa7Lm1BvveACZg$glF1PdrNL7TDnXzpObHk5yAnB8gK5yONk6oI/lo9pR", // one character short
		"$argon2id$v=19$m=999999999,t=3,p=2$ihU4ZRXtPa7Lm1BvveACZg$glF1PdrNL7TDnXzpObHk5yAnB8gK5yONk6oI/lo9pRM",
		"correct horse battery staple",
		"secret",
	} {
		_, err := Parse([]byte("access:\n  password_hash: '"+hash+"'\n"), "spinbook.yaml")
		if err == nil {
			t.Fatalf("password_hash %q accepted", hash)
		}
		msg := err.Error()
		for _, part := range []string{"ihU4ZRXtPa7Lm1BvveACZg", "glF1PdrNL7TDn", "horse", "secret"} {
			if strings.Contains(msg, part) {
				t.Errorf("error for password_hash %q contains %q:\n%s", hash, part, msg)
			}
		}
	}
}

func TestCommandUnmarshalYAML(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       Command
		wantErr    bool
	}{
		{"list", "[jupyter, lab]", Command{"jupyter", "lab"}, false},
		{"string", "jupyter  lab --no-browser", Command{"jupyter", "lab", "--no-browser"}, false},
		{"empty string", `""`, nil, false},
		{"null", "~", nil, false},
		{"quotes", `"jupyter lab --x='a b'"`, nil, true},
		{"mapping", "{a: b}", nil, true},
		{"nested list", "[[a]]", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v struct {
				C Command `yaml:"c"`
			}
			err := yaml.Unmarshal([]byte("c: "+tt.yaml), &v)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, v.C); !tt.wantErr && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateUser(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"alice", true},
		{"bob-2", true},
		{"7", true},
		{"a--b", true},
		{strings.Repeat("x", 28), true},
		{"", false},
		{"../x", false},
		{"A", false},
		{"Alice", false},
		{strings.Repeat("x", 29), false},
		{strings.Repeat("x", 40), false},
		{"-a", false},
		{"a-", false},
		{"-", false},
		{"a_b", false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{"é", false},
		{"a\nb", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUser(tt.name)
			if tt.ok {
				if err != nil {
					t.Errorf("ValidateUser(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateUser(%q) = nil, want an error", tt.name)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`) || !strings.Contains(msg, "1 to 28 lowercase letters, digits and '-', starting and ending with a letter or digit") {
				t.Errorf("error %q does not quote the name and state the rule", msg)
			}
			if strings.ContainsAny(msg, "\n\x00") {
				t.Errorf("error %q carries control characters unescaped", msg)
			}
		})
	}
}

func TestFind(t *testing.T) {
	// touch creates path (and its directory) and returns it.
	touch := func(t *testing.T, path string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// setup gives each case its own home, XDG config dir and working
	// directory.
	setup := func(t *testing.T) (home, xdg, wd string) {
		home = hermetic(t)
		xdg = t.TempDir()
		wd = t.TempDir()
		t.Chdir(wd)
		return home, xdg, wd
	}

	t.Run("explicit wins", func(t *testing.T) {
		_, xdg, _ := setup(t)
		explicit := touch(t, filepath.Join(t.TempDir(), "other.yaml"))
		t.Setenv("SPINBOOK_CONFIG", touch(t, filepath.Join(t.TempDir(), "env.yaml")))
		touch(t, "spinbook.yaml")
		t.Setenv("XDG_CONFIG_HOME", xdg)
		touch(t, filepath.Join(xdg, "spinbook", "config.yaml"))
		got, err := Find(explicit)
		if err != nil || got != explicit {
			t.Errorf("Find = %q, %v; want %q", got, err, explicit)
		}
	})
	t.Run("explicit missing", func(t *testing.T) {
		setup(t)
		touch(t, "spinbook.yaml")
		got, err := Find("nope.yaml")
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "--config") {
			t.Errorf("Find(missing) = %q, %v; want an fs.ErrNotExist error naming --config", got, err)
		}
	})
	t.Run("explicit directory", func(t *testing.T) {
		setup(t)
		if got, err := Find(t.TempDir()); err == nil {
			t.Errorf("Find(directory) = %q, nil; want an error", got)
		}
	})
	t.Run("env before cwd", func(t *testing.T) {
		setup(t)
		env := touch(t, filepath.Join(t.TempDir(), "env.yaml"))
		t.Setenv("SPINBOOK_CONFIG", env)
		touch(t, "spinbook.yaml")
		got, err := Find("")
		if err != nil || got != env {
			t.Errorf("Find = %q, %v; want %q", got, err, env)
		}
	})
	t.Run("env missing", func(t *testing.T) {
		setup(t)
		t.Setenv("SPINBOOK_CONFIG", filepath.Join(t.TempDir(), "gone.yaml"))
		touch(t, "spinbook.yaml")
		got, err := Find("")
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "$SPINBOOK_CONFIG") {
			t.Errorf("Find = %q, %v; want an fs.ErrNotExist error naming $SPINBOOK_CONFIG", got, err)
		}
	})
	t.Run("cwd before xdg", func(t *testing.T) {
		_, xdg, _ := setup(t)
		touch(t, "spinbook.yaml")
		t.Setenv("XDG_CONFIG_HOME", xdg)
		touch(t, filepath.Join(xdg, "spinbook", "config.yaml"))
		got, err := Find("")
		if err != nil || got != "spinbook.yaml" {
			t.Errorf("Find = %q, %v; want spinbook.yaml", got, err)
		}
	})
	t.Run("xdg", func(t *testing.T) {
		home, xdg, _ := setup(t)
		t.Setenv("XDG_CONFIG_HOME", xdg)
		want := touch(t, filepath.Join(xdg, "spinbook", "config.yaml"))
		touch(t, filepath.Join(home, ".config", "spinbook", "config.yaml"))
		got, err := Find("")
		if err != nil || got != want {
			t.Errorf("Find = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("home config", func(t *testing.T) {
		home, _, _ := setup(t)
		want := touch(t, filepath.Join(home, ".config", "spinbook", "config.yaml"))
		got, err := Find("")
		if err != nil || got != want {
			t.Errorf("Find = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("none", func(t *testing.T) {
		setup(t)
		got, err := Find("")
		if err != nil || got != "" {
			t.Errorf("Find = %q, %v; want \"\", nil", got, err)
		}
	})
}

// portal.trusted_proxies is parsed like access.trusted_proxies, and a bad
// entry names its key.
func TestPortalTrustedProxies(t *testing.T) {
	hermetic(t)
	c := Default()
	c.Portal.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
	if diff := cmp.Diff(want, c.Portal.TrustedPrefixes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("TrustedPrefixes (-want +got):\n%s", diff)
	}
	c = Default()
	c.Portal.TrustedProxies = []string{"proxy.example.com"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "portal.trusted_proxies[0]") {
		t.Errorf("Validate() with a host name = %v, want a portal.trusted_proxies[0] problem", err)
	}
}
