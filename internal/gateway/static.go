package gateway

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// A StaticRoute is a URL prefix under which Jupyter serves files from
// directories, that the gateway can serve itself: notebook 6's /static/;
// on jupyter_server 2 its own /static/, JupyterLab's /static/lab/,
// Notebook 7's /static/notebook/ and the prebuilt extensions under
// /lab/extensions/.
type StaticRoute struct {
	// Prefix is the URL path, starting and ending with "/".
	Prefix string `json:"prefix"`
	// Dirs are searched in order for a file, as Jupyter's FileFindHandler
	// searches its path.
	Dirs []string `json:"dirs"`
	// Cache is the Cache-Control Jupyter sends for these files.
	Cache StaticCache `json:"cache,omitempty"`
}

// StaticCache names one of Jupyter's caching rules for static files.
type StaticCache string

const (
	// CacheVersioned: with a ?v= query, cached for ten years (Tornado's
	// max-age=315360000, and Expires); without, no-cache (revalidated).
	// Notebook 6's and jupyter_server's /static/.
	CacheVersioned StaticCache = ""
	// CacheImmutable: "public, max-age=31536000, immutable" always; the
	// file names carry their content's hash. JupyterLab's /static/lab/,
	// Notebook 7's /static/notebook/.
	CacheImmutable StaticCache = "immutable"
	// CacheImmutableStatic: files below a static/ directory are immutable,
	// the rest (package.json) no-cache. /lab/extensions/.
	CacheImmutableStatic StaticCache = "immutable-static"
)

// staticMount is a StaticRoute opened for serving.
type staticMount struct {
	prefix string
	roots  []*os.Root
	cache  StaticCache
}

// openStatic opens every route's directories, longest prefix first, so
// /static/lab/ is matched before /static/.
func openStatic(routes []StaticRoute) ([]staticMount, error) {
	var out []staticMount
	for _, r := range routes {
		if !strings.HasPrefix(r.Prefix, "/") || !strings.HasSuffix(r.Prefix, "/") {
			return nil, fmt.Errorf("static route %q: the prefix must start and end with /", r.Prefix)
		}
		switch r.Cache {
		case CacheVersioned, CacheImmutable, CacheImmutableStatic:
		default:
			return nil, fmt.Errorf("static route %s: unknown cache rule %q", r.Prefix, r.Cache)
		}
		m := staticMount{prefix: r.Prefix, cache: r.Cache}
		for _, d := range r.Dirs {
			root, err := os.OpenRoot(d)
			if err != nil {
				for _, m := range out {
					m.close()
				}
				m.close()
				return nil, fmt.Errorf("static route %s: %w", r.Prefix, err)
			}
			m.roots = append(m.roots, root)
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b staticMount) int { return len(b.prefix) - len(a.prefix) })
	return out, nil
}

func (m staticMount) close() {
	for _, r := range m.roots {
		r.Close()
	}
}

// serveStatic answers GET and HEAD of a file under a static route from its
// directories itself, sparing the trip through Jupyter's Tornado, and
// reports whether it did; anything it does not find (and /static/custom/,
// which Jupyter serves from the user's config) goes on to Jupyter. Each
// directory is opened as an os.Root, so no path, symlink included,
// reaches outside it. The headers are Jupyter's own: Cache-Control by the
// route's rule, Expires with ?v=, Last-Modified, no ETag.
func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request) bool {
	if len(g.static) == 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	for _, m := range g.static {
		name, ok := strings.CutPrefix(r.URL.Path, m.prefix)
		if !ok {
			continue
		}
		// Only the longest matching prefix: Jupyter routes /static/lab/x
		// to JupyterLab alone, never to /static/.
		if name == "" || strings.ContainsRune(name, '\\') || (m.prefix == "/static/" && strings.HasPrefix(name, "custom/")) {
			return false
		}
		for _, root := range m.roots {
			if serveFile(w, r, root, name, m.cache) {
				return true
			}
		}
		return false
	}
	return false
}

// tornadoMaxAge is how long Tornado lets a ?v= URL be cached: ten years.
const tornadoMaxAge = 86400 * 365 * 10

// serveFile serves name from root if it is a regular file there.
func serveFile(w http.ResponseWriter, r *http.Request, root *os.Root, name string, cache StaticCache) bool {
	f, err := root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	versioned := r.URL.Query().Has("v")
	h := w.Header()
	switch {
	case cache == CacheImmutable, cache == CacheImmutableStatic && belowStatic(name):
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	case versioned && cache == CacheVersioned:
		h.Set("Cache-Control", fmt.Sprintf("max-age=%d", tornadoMaxAge))
	default:
		h.Set("Cache-Control", "no-cache")
	}
	if versioned {
		h.Set("Expires", time.Now().UTC().Add(tornadoMaxAge*time.Second).Format(http.TimeFormat))
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
	return true
}

// belowStatic reports whether name lies below a directory called static
// (JupyterLab marks each extension's static/ directory immutable).
func belowStatic(name string) bool {
	dirs := strings.Split(name, "/")
	return slices.Contains(dirs[:len(dirs)-1], "static")
}
