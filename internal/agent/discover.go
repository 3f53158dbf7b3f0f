package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/gateway"
)

// ErrNoJupyter means no Jupyter server command could be found.
var ErrNoJupyter = errors.New("no Jupyter found: install one (spinbook's scripts/setup makes a JupyterLab venv; " +
	"elsewhere: pip install jupyterlab; Debian: apt-get install jupyter-notebook) or set jupyter.command or jupyter.venv in the config")

// candidates are tried in order when no jupyter.command is configured: the
// per-app scripts rather than `jupyter lab` save the dispatcher's start-up.
var candidates = []string{"jupyter-lab", "jupyter-notebook", "jupyter-server"}

// managedVenvs are where scripts/jupyter-venv keeps the stable symlink to
// its venv, in the order the agent looks, after PATH, when nothing is
// configured: $SPINBOOK_CACHE's alone when that is set (as the script
// does), else the user's cache, then the machine's.
func managedVenvs() []string {
	if c := os.Getenv("SPINBOOK_CACHE"); filepath.IsAbs(c) {
		return []string{filepath.Join(c, "jupyter-venv")}
	}
	var out []string
	if c := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(c) {
		out = append(out, filepath.Join(c, "spinbook", "jupyter-venv"))
	} else if h, err := os.UserHomeDir(); err == nil {
		out = append(out, filepath.Join(h, ".cache", "spinbook", "jupyter-venv"))
	}
	return append(out, "/var/cache/spinbook/jupyter-venv")
}

// install is what the agent knows about the Jupyter it starts.
type install struct {
	Command []string `json:"command"` // argv prefix, e.g. [/usr/bin/jupyter-notebook]
	App     string   `json:"app"`     // traitlets class for flags: NotebookApp or ServerApp
	Sock    bool     `json:"sock"`    // supports --<App>.sock
	// Venv is the virtualenv the command belongs to, symlinks resolved;
	// Jupyter, kernels and terminals run with it activated. "" for none.
	Venv string `json:"venv,omitempty"`
	// Versions are the installed versions of jupyterlab, notebook and
	// jupyter_server, as far as the command's Python has them.
	Versions map[string]string `json:"versions,omitempty"`
	// Static are the URL prefixes this Jupyter serves files under and
	// their directories, for the gateway to serve those files itself;
	// none when they cannot be learned.
	Static []gateway.StaticRoute `json:"static,omitempty"`
}

// rootFlag is the flag that names the directory Jupyter serves.
func (in install) rootFlag() string {
	if in.App == "NotebookApp" {
		return "--NotebookApp.notebook_dir="
	}
	return "--ServerApp.root_dir="
}

// appName is which Jupyter application the command starts: jupyter-lab,
// jupyter-notebook, jupyter-server, or "" when its name does not say.
func (in install) appName() string {
	name := filepath.Base(in.Command[0])
	if name == "jupyter" && len(in.Command) > 1 {
		name += "-" + in.Command[1]
	}
	switch name {
	case "jupyter-lab", "jupyter-notebook", "jupyter-server":
		return name
	}
	return ""
}

// describe says which Jupyter this is and its version, such as
// "jupyterlab 4.6.6 (jupyter_server 2.21.1)" or "notebook 6.4.12", for
// status and the log.
func (in install) describe() string {
	v := func(pkg string) string {
		if s := in.Versions[pkg]; s != "" {
			return pkg + " " + s
		}
		return pkg + " (version unknown)"
	}
	server := ""
	if s := in.Versions["jupyter_server"]; s != "" && in.App == "ServerApp" {
		server = " (jupyter_server " + s + ")"
	}
	switch in.appName() {
	case "jupyter-lab":
		return v("jupyterlab") + server
	case "jupyter-notebook":
		return v("notebook") + server
	case "jupyter-server":
		return v("jupyter_server")
	}
	if in.App == "NotebookApp" {
		return v("notebook")
	}
	return strings.Join(in.Command, " ") + server
}

// findJupyter resolves the Jupyter command to run and the venv it belongs
// to: with jupyter.venv, the configured command (a bare name is looked up
// in the venv's bin/) or the first candidate there; else the configured
// command on PATH; else the first candidate on PATH; else the first
// candidate in the first of fallbacks, venvs such as managedVenvs.
func findJupyter(configured []string, venv string, fallbacks []string) ([]string, string, error) {
	if venv != "" {
		cfg := filepath.Join(venv, "pyvenv.cfg")
		if _, err := os.Stat(cfg); err != nil {
			return nil, "", fmt.Errorf("jupyter.venv %s is not a virtualenv (no pyvenv.cfg: %w); make it with python3 -m venv %s and install jupyterlab in it", venv, err, venv)
		}
		bin := filepath.Join(venv, "bin")
		if len(configured) > 0 {
			name := configured[0]
			if !strings.ContainsRune(name, '/') {
				name = filepath.Join(bin, name)
			}
			if !isExecutable(name) {
				return nil, "", fmt.Errorf("jupyter.command %q: %s is not an executable file; install it in jupyter.venv (%s/pip install jupyterlab) or fix the command", strings.Join(configured, " "), name, bin)
			}
			return inVenv(append([]string{name}, configured[1:]...))
		}
		for _, c := range candidates {
			if p := filepath.Join(bin, c); isExecutable(p) {
				return inVenv([]string{p})
			}
		}
		return nil, "", fmt.Errorf("jupyter.venv %s has none of %s in bin/; install JupyterLab there (%s/pip install jupyterlab)", venv, strings.Join(candidates, ", "), bin)
	}
	if len(configured) > 0 {
		path, err := exec.LookPath(configured[0])
		if err != nil {
			return nil, "", fmt.Errorf("jupyter.command %q: %w; check the path or install Jupyter", strings.Join(configured, " "), err)
		}
		return inVenv(append([]string{path}, configured[1:]...))
	}
	for _, c := range candidates {
		if path, err := exec.LookPath(c); err == nil {
			return inVenv([]string{path})
		}
	}
	for _, v := range fallbacks {
		for _, c := range candidates {
			if p := filepath.Join(v, "bin", c); isExecutable(p) {
				return inVenv([]string{p})
			}
		}
	}
	return nil, "", ErrNoJupyter
}

// inVenv returns command and, when its executable lies in the bin/ of a
// virtualenv, that venv: both with the venv's symlinks resolved, so a
// server keeps the venv it started with when a link moves on.
func inVenv(command []string) ([]string, string, error) {
	bin := filepath.Dir(command[0])
	if filepath.Base(bin) != "bin" {
		return command, "", nil
	}
	root := filepath.Dir(bin)
	if _, err := os.Stat(filepath.Join(root, "pyvenv.cfg")); err != nil {
		return command, "", nil
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return command, "", nil
	}
	out := append([]string{filepath.Join(real, "bin", filepath.Base(command[0]))}, command[1:]...)
	return out, real, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// venvEnv is what activates venv for Jupyter, its kernels and terminals:
// its bin/ ahead on path (the PATH Jupyter would otherwise get) and
// VIRTUAL_ENV; nothing without a venv.
func venvEnv(venv, path string) (newPath string, env []string) {
	if venv == "" {
		return path, nil
	}
	bin := filepath.Join(venv, "bin")
	if path != "" {
		bin += string(os.PathListSeparator) + path
	}
	return bin, []string{"VIRTUAL_ENV=" + venv}
}

// probeVersion is part of the probe cache's key: a cached answer from an
// older agent, which knew less, is not used.
const probeVersion = "3"

// probe learns which options the Jupyter command takes from its
// --help-all, and its versions from its Python, which costs two Python
// start-ups (~1 s), so the answer is cached by the executable's identity
// when cacheDir is set.
func probe(ctx context.Context, command []string, venv, cacheDir string) (install, error) {
	key := probeKey(command)
	cacheFile := ""
	if cacheDir != "" && key != "" {
		cacheFile = filepath.Join(cacheDir, "jupyter-"+key+".json")
		if data, err := os.ReadFile(cacheFile); err == nil {
			var in install
			if json.Unmarshal(data, &in) == nil && in.App != "" {
				in.Command, in.Venv = command, venv
				return in, nil
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, command[0], append(command[1:], "--help-all")...)
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		return install{}, fmt.Errorf("run %s --help-all: %w", strings.Join(command, " "), err)
	}
	in := install{Command: command, Venv: venv}
	switch {
	case bytes.Contains(out, []byte("--ServerApp.sock=")):
		in.App, in.Sock = "ServerApp", true
	case bytes.Contains(out, []byte("--NotebookApp.sock=")):
		in.App, in.Sock = "NotebookApp", true
	case bytes.Contains(out, []byte("--ServerApp.")):
		in.App = "ServerApp"
	case bytes.Contains(out, []byte("--NotebookApp.")):
		in.App = "NotebookApp"
	default:
		return install{}, fmt.Errorf("%s does not look like a Jupyter server (its --help-all names neither ServerApp nor NotebookApp options); set jupyter.command to jupyter lab, notebook or server", strings.Join(command, " "))
	}
	if py := interpreter(command[0], venv); py != nil {
		d := pythonDetails(ctx, py, in.App)
		in.Versions, in.Static = d.Versions, d.Static
	}
	if cacheFile != "" {
		if data, err := json.Marshal(in); err == nil {
			os.MkdirAll(cacheDir, 0o700)
			os.WriteFile(cacheFile, data, 0o600)
		}
	}
	return in, nil
}

// interpreter is the Python that runs script: the venv's, else the one its
// #! line names (such as /usr/bin/python3, or /usr/bin/env python3); nil
// when there is none to be found.
func interpreter(script, venv string) []string {
	if venv != "" {
		return []string{filepath.Join(venv, "bin", "python")}
	}
	f, err := os.Open(script)
	if err != nil {
		return nil
	}
	line := make([]byte, 256)
	n, _ := f.Read(line)
	f.Close()
	first, _, _ := bytes.Cut(line[:n], []byte("\n"))
	interp, ok := bytes.CutPrefix(first, []byte("#!"))
	if !ok {
		return nil
	}
	argv := strings.Fields(string(interp))
	if len(argv) == 0 {
		return nil
	}
	return argv
}

// details is what the Jupyter's Python says about its packages.
type details struct {
	Versions map[string]string     `json:"versions"`
	Static   []gateway.StaticRoute `json:"static"`
}

// detailsScript prints details as JSON for the app (sys.argv[1]:
// NotebookApp or ServerApp). The static routes are those Jupyter itself
// serves, with its own cache rules: notebook 6's /static/; on
// jupyter_server 2 its /static/, and with JupyterLab or Notebook 7
// installed (each server loads both extensions, whichever app starts)
// /static/lab/, /static/notebook/ and the prebuilt extensions under
// /lab/extensions/ from every labextensions directory, in Jupyter's order.
const detailsScript = `
import json, os, sys
from importlib import metadata
app = sys.argv[1]
out = {"versions": {}, "static": []}
for name in ("jupyterlab", "notebook", "jupyter_server"):
    try:
        out["versions"][name] = metadata.version(name)
    except Exception:
        pass
def add(prefix, dirs, cache=""):
    dirs = [d for d in dirs if os.path.isdir(d)]
    if dirs:
        out["static"].append({"prefix": prefix, "dirs": dirs, "cache": cache})
notebook7 = int(out["versions"].get("notebook", "0").split(".")[0]) >= 7
try:
    if app == "NotebookApp":
        import notebook
        if os.path.isdir(os.path.join(notebook.DEFAULT_STATIC_FILES_PATH, "base")):
            add("/static/", [notebook.DEFAULT_STATIC_FILES_PATH])
    else:
        import jupyter_server
        add("/static/", [jupyter_server.DEFAULT_STATIC_FILES_PATH])
        if "jupyterlab" in out["versions"]:
            from jupyterlab.commands import get_app_dir
            add("/static/lab/", [os.path.join(get_app_dir(), "static")], "immutable")
        if notebook7:
            import notebook
            add("/static/notebook/", [os.path.join(os.path.dirname(notebook.__file__), "static")], "immutable")
        if "jupyterlab" in out["versions"] or notebook7:
            from jupyter_core.paths import jupyter_path
            add("/lab/extensions/", jupyter_path("labextensions"), "immutable-static")
except Exception:
    pass
sys.stdout.write(json.dumps(out))
`

// pythonDetails runs detailsScript with py for app; what it cannot learn
// stays empty (the version is then "unknown" and static files go to
// Jupyter).
func pythonDetails(ctx context.Context, py []string, app string) details {
	var d details
	out, err := exec.CommandContext(ctx, py[0], append(py[1:], "-c", detailsScript, app)...).Output()
	if err != nil || json.Unmarshal(out, &d) != nil {
		return details{}
	}
	return d
}

// probeKey names a command by its argv and its executable's size and
// modification time, so an upgrade invalidates the cached probe.
func probeKey(command []string) string {
	fi, err := os.Stat(command[0])
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %q %d %d", probeVersion, command, fi.Size(), fi.ModTime().UnixNano())
	return hex.EncodeToString(h.Sum(nil))[:16]
}
