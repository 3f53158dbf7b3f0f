package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A decoder fills a Config from a YAML node tree. It walks the tree itself,
// following the yaml tags of the Go types, so that it can report unknown
// keys (with the valid ones) and type mismatches at every level, with
// their paths, and record the line of every key for Validate.
type decoder struct {
	lines    map[string]int
	problems []Problem
}

func (d *decoder) problemf(line int, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) document(doc *yaml.Node, c *Config) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.problemf(root.Line, "", "the file must be a mapping of keys (%s), not %s",
			strings.Join(keys(reflect.TypeFor[Config]()), ", "), describe(root))
		return
	}
	d.mapping(root, reflect.ValueOf(c).Elem(), "")
}

// mapping decodes the mapping n into the struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	valid := keys(v.Type())
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.problemf(k.Line, path, "a key must be a plain name, not %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		if first, ok := seen[k.Value]; ok {
			d.problemf(k.Line, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := field(v, k.Value)
		if !ok {
			d.problemf(k.Line, p, "unknown key%s (valid keys here: %s)", suggest(k.Value, valid), strings.Join(valid, ", "))
			continue
		}
		d.lines[p] = k.Line
		d.value(val, f, p)
	}
}

var commandType = reflect.TypeFor[Command]()

// unmarshalerType: a section type that reads a scalar form itself.
var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// value decodes n into v, whose YAML path is p.
func (d *decoder) value(n *yaml.Node, v reflect.Value, p string) {
	if isNull(n) {
		return // unset: the default applies
	}
	switch {
	case v.Type() == commandType && n.Kind == yaml.ScalarNode:
		cmd, err := splitCommand(n.Value)
		if err != nil {
			d.problemf(n.Line, p, "%s", err)
			return
		}
		v.Set(reflect.ValueOf(cmd))

	case v.Type() == commandType && n.Kind != yaml.SequenceNode:
		d.problemf(n.Line, p, "expected a list or a string, not %s", describe(n))

	case v.Kind() == reflect.Struct && n.Kind == yaml.ScalarNode && v.Addr().Type().Implements(unmarshalerType):
		// A section with a one-word form too (access.tls: self-signed).
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.problemf(n.Line, p, "%s", err)
		}

	case v.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.problemf(n.Line, p, "expected a mapping with keys %s, not %s", strings.Join(keys(v.Type()), ", "), describe(n))
			return
		}
		d.mapping(n, v, p)

	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.Struct:
		// Named entries (sizes.NAME): each value decoded like a section.
		if n.Kind != yaml.MappingNode {
			d.problemf(n.Line, p, "expected a mapping of names to %s, not %s", strings.Join(keys(v.Type().Elem()), "/"), describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], resolve(n.Content[i+1])
			if k.Kind != yaml.ScalarNode {
				d.problemf(k.Line, p, "a name must be a plain value, not %s", describe(k))
				continue
			}
			ep := join(p, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.problemf(k.Line, ep, "duplicate name (first at line %d)", d.lines[ep])
				continue
			}
			d.lines[ep] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.value(val, e, ep)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)

	case v.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problemf(n.Line, p, "expected a single value, not %s", describe(n))
			return
		}
		v.SetString(n.Value)

	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		if n.Kind != yaml.SequenceNode {
			d.problemf(n.Line, p, "expected a list, not %s: write [item, ...] or one \"- item\" per line", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", p, i)
			d.lines[ip] = item.Line
			item = resolve(item)
			switch {
			case isNull(item):
				s = reflect.Append(s, reflect.Zero(v.Type().Elem()))
			case item.Kind == yaml.ScalarNode:
				s = reflect.Append(s, reflect.ValueOf(item.Value).Convert(v.Type().Elem()))
			default:
				d.problemf(item.Line, ip, "expected a single value, not %s", describe(item))
			}
		}
		v.Set(s)

	default:
		// Types without a case above (numbers, maps) are left to yaml.
		if err := n.Decode(v.Addr().Interface()); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, msg := range te.Errors {
					d.problemf(n.Line, p, "%s", typeErrorLine.ReplaceAllString(msg, ""))
				}
				return
			}
			d.problemf(n.Line, p, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
}

var typeErrorLine = regexp.MustCompile(`^line \d+: `)

// keys returns the YAML keys of struct type t, in declaration order.
func keys(t reflect.Type) []string {
	var ks []string
	for f := range t.Fields() {
		if name := yamlName(f); name != "" {
			ks = append(ks, name)
		}
	}
	return ks
}

// field returns the field of struct v whose YAML key is name.
func field(v reflect.Value, name string) (reflect.Value, bool) {
	for f, fv := range v.Fields() {
		if yamlName(f) == name {
			return fv, true
		}
	}
	return reflect.Value{}, false
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases (*name) to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of n for an error message: "a list", "a number".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "true/false"
		case "!!null":
			return "nothing"
		}
		return "a string"
	}
	return "an unknown kind of value"
}

// suggest returns `, did you mean "x"?` when one valid key is close to key.
func suggest(key string, valid []string) string {
	best, bestDist := "", 3
	for _, v := range valid {
		if d := distance(strings.ToLower(key), v); d < bestDist {
			best, bestDist = v, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %q?", best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
