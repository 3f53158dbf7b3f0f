package aws

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// docResources are the lists of resources docs/aws.md shows, by the name
// of their generated block: what each `up` creates in either load-balancer
// mode, and what the shared mode adds to the site stack.
func docResources(t *testing.T) map[string]string {
	t.Helper()
	list := func(data []byte, keep func(string) bool) string {
		var b strings.Builder
		tpl := parse(t, data)
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for n := range tpl.Resources {
				if keep(n) && !yield(n) {
					return
				}
			}
		}) {
			fmt.Fprintf(&b, "- `%s` (%s)\n", name, tpl.Resources[name].Type)
		}
		return b.String()
	}
	all := func(string) bool { return true }
	r := rendered(t)
	perServerSite, sharedSite := parse(t, r["site-created-vpc"]), r["site-shared-alb"]
	sharedParsed := parse(t, sharedSite)
	return map[string]string{
		"up per-server": list(r["instance-created-vpc"], all),
		"up shared":     list(r["instance-shared-alb"], all),
		"site shared": list(sharedSite, func(n string) bool {
			_, inBoth := perServerSite.Resources[n]
			return !inBoth
		}),
		"site portal": list(r["site-portal"], func(n string) bool {
			_, inBoth := sharedParsed.Resources[n]
			return !inBoth
		}),
	}
}

var generatedBlock = regexp.MustCompile("(?s)<!-- generated: resources ([a-z -]+) -->\n(.*?)<!-- end generated -->")

// TestDocResources: the lists of resources in docs/aws.md are those of the
// templates (created VPC, TLS), so the doc cannot drift from the code;
// -update rewrites them.
func TestDocResources(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docs", "aws.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := docResources(t)
	found := map[string]bool{}
	out := generatedBlock.ReplaceAllStringFunc(string(doc), func(block string) string {
		m := generatedBlock.FindStringSubmatch(block)
		name := m[1]
		found[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: a generated block %q that no template makes", path, name)
			return block
		}
		if !*update {
			if diff := cmp.Diff(w, m[2]); diff != "" {
				t.Errorf("%s: the resources of %q differ from the templates (-templates +doc; go test ./internal/backend/aws -run TestDocResources -update rewrites them):\n%s", path, name, diff)
			}
		}
		return "<!-- generated: resources " + name + " -->\n" + w + "<!-- end generated -->"
	})
	for name := range want {
		if !found[name] {
			t.Errorf("%s has no block <!-- generated: resources %s -->", path, name)
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
