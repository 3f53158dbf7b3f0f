package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// A backend whose servers start in a fresh file system each time (the
// kubernetes backend: a new pod) carries the probe's answer from one
// server of an image to the next itself: it reads what the agent learned
// from the control API's status (StatusResponse.ProbeCache) and hands it
// to the next agent in its spec (AgentSpec.ProbeCache), which puts the
// files in its CacheDir before it probes. probe takes a file only for the
// very executable it was learned from (its name is probeKey's), so an
// answer from another image, or another version of it, is never used.

// probeCacheName is the only name a carried answer may have.
var probeCacheName = regexp.MustCompile(`^jupyter-[0-9a-f]{16}\.json$`)

// maxCarried bounds one carried answer.
const maxCarried = 256 << 10

// seedProbeCache writes the carried answers into dir. Entries of another
// name or too large are refused, and the rest still written.
func seedProbeCache(dir string, files map[string]string) error {
	if dir == "" || len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("probe cache: %w", err)
	}
	var bad error
	for name, data := range files {
		if !probeCacheName.MatchString(name) || len(data) > maxCarried {
			bad = fmt.Errorf("probe cache: refused the entry %.40q (%d bytes)", name, len(data))
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return fmt.Errorf("probe cache: %w", err)
		}
	}
	return bad
}

// readProbeCache returns the answers in dir, in the form seedProbeCache
// takes. The agent reads them once, right after its probe and before
// Jupyter (and so any kernel) runs: what it reports is what it learned.
func readProbeCache(dir string) map[string]string {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !probeCacheName.MatchString(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && len(data) <= maxCarried {
			out[e.Name()] = string(data)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// probeCached reports whether probe would answer command from dir.
func probeCached(command []string, dir string) bool {
	key := probeKey(command)
	if dir == "" || key == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "jupyter-"+key+".json"))
	return err == nil
}
