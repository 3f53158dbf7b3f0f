package gateway

import (
	"net/http"
	"os"
	"strings"
)

// staticPrefix is where Jupyter (notebook 6) serves its own static files:
// the JavaScript, CSS, fonts and images of every page.
const staticPrefix = "/static/"

// serveStatic answers GET and HEAD of a file under /static/ from
// Options.StaticDir itself, sparing the trip through Jupyter's Tornado,
// and reports whether it did; anything it does not find (and
// /static/custom/, which Jupyter serves from the user's config) goes on to
// Jupyter. The directory is opened as an os.Root, so no path, symlink
// included, reaches outside it.
func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request) bool {
	if g.static == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	name, ok := strings.CutPrefix(r.URL.Path, staticPrefix)
	if !ok || name == "" || strings.HasPrefix(name, "custom/") || strings.ContainsRune(name, '\\') {
		return false
	}
	f, err := g.static.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	// As Jupyter does: versioned URLs (?v=...) are cached for good, others
	// revalidated (ServeContent answers If-Modified-Since with 304).
	if r.URL.Query().Has("v") {
		w.Header().Set("Cache-Control", "max-age=31536000")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
	return true
}

// openStatic opens dir for serveStatic; "" means no static serving.
func openStatic(dir string) (*os.Root, error) {
	if dir == "" {
		return nil, nil
	}
	return os.OpenRoot(dir)
}
