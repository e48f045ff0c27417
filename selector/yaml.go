package selector

import (
	"gopkg.in/yaml.v3"
)

// Ansible loads inventories with PyYAML, which reads YAML 1.1: yaml.v3 reads
// YAML 1.2. resolveYAML rewrites a parsed document into the tree PyYAML
// would have built, so everything after it walks plain mappings, sequences
// and scalars:
//
//   - aliases are replaced by (a copy of) their anchor's value;
//   - merge keys (`<<: *a`, `<<: [*a, *b]`) are flattened as PyYAML's
//     flatten_mapping does: merged keys have lower precedence than explicit
//     ones, and in a list the earlier mapping wins;
//   - a key given twice keeps its first position and its last value, as a
//     Python dict does;
//   - plain scalars yes/no/on/off (in the three spellings PyYAML knows)
//     become booleans; quoted or explicitly tagged ones stay strings.
//
// Copying aliases could let a small document expand into a huge one (the
// "billion laughs"), so the resolved tree's size is bounded.

// yaml11Bools are PyYAML's boolean spellings beyond YAML 1.2's true/false.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// notPlain are the styles that keep a scalar a string in PyYAML.
const notPlain = yaml.TaggedStyle | yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle

// aliasHeadroom is how many nodes aliases may add beyond twice the document's own.
const aliasHeadroom = 1_000_000

type resolver struct {
	path   string
	budget int                 // nodes the resolved tree may still hold
	active map[*yaml.Node]bool // mappings and sequences being resolved (alias cycles)
}

func resolveYAML(path string, n *yaml.Node) (*yaml.Node, error) {
	r := &resolver{path: path, budget: 2*countNodes(n) + aliasHeadroom, active: map[*yaml.Node]bool{}}
	return r.node(n, false)
}

func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

func (r *resolver) node(n *yaml.Node, isKey bool) (*yaml.Node, error) {
	if r.budget--; r.budget < 0 {
		return nil, inputErrorf("%s:%d: aliases expand the inventory beyond %d values", r.path, n.Line, aliasHeadroom)
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, inputErrorf("%s:%d: alias *%s has no anchor", r.path, n.Line, n.Value)
		}
		if r.active[n.Alias] {
			return nil, inputErrorf("%s:%d: alias *%s refers to a value that contains it", r.path, n.Line, n.Value)
		}
		return r.node(n.Alias, isKey)
	case yaml.ScalarNode:
		c := *n
		c.Anchor = ""
		if b, ok := yaml11Bools[n.Value]; ok && !isKey && n.Tag == "!!str" && n.Style&notPlain == 0 {
			c.Tag, c.Value = "!!bool", "false"
			if b {
				c.Value = "true"
			}
		}
		return &c, nil
	case yaml.MappingNode:
		return r.mapping(n)
	default: // documents and sequences
		r.active[n] = true
		defer delete(r.active, n)
		c := *n
		c.Anchor = ""
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, item := range n.Content {
			var err error
			if c.Content[i], err = r.node(item, false); err != nil {
				return nil, err
			}
		}
		return &c, nil
	}
}

func (r *resolver) mapping(n *yaml.Node) (*yaml.Node, error) {
	r.active[n] = true
	defer delete(r.active, n)
	var merged, explicit []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := r.node(n.Content[i], true)
		if err != nil {
			return nil, err
		}
		v, err := r.node(n.Content[i+1], false)
		if err != nil {
			return nil, err
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			pairs, err := r.mergePairs(v)
			if err != nil {
				return nil, err
			}
			merged = append(merged, pairs...)
			continue
		}
		explicit = append(explicit, k, v)
	}
	c := *n
	c.Anchor = ""
	c.Content = dedupe(append(merged, explicit...))
	return &c, nil
}

// mergePairs is the key/value list a merge key contributes: a mapping's
// pairs, or those of a list of mappings with the later ones first, so that
// the earlier mapping wins.
func (r *resolver) mergePairs(v *yaml.Node) ([]*yaml.Node, error) {
	switch v.Kind {
	case yaml.MappingNode:
		return v.Content, nil
	case yaml.SequenceNode:
		var out []*yaml.Node
		for i := len(v.Content) - 1; i >= 0; i-- {
			m := v.Content[i]
			if m.Kind != yaml.MappingNode {
				return nil, inputErrorf("%s:%d: merge key << takes a mapping or a list of mappings, got a list holding %s", r.path, m.Line, nodeKind(m))
			}
			out = append(out, m.Content...)
		}
		return out, nil
	}
	return nil, inputErrorf("%s:%d: merge key << takes a mapping or a list of mappings, got %s", r.path, v.Line, nodeKind(v))
}

func nodeKind(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Tag == "!!null":
		return "null"
	}
	return describeNode(n)
}

// dedupe keeps one pair per scalar key: at the key's first position, with
// its last key node (for the line) and value.
func dedupe(pairs []*yaml.Node) []*yaml.Node {
	first := map[string]int{}
	out := make([]*yaml.Node, 0, len(pairs))
	for i := 0; i+1 < len(pairs); i += 2 {
		k := pairs[i]
		if k.Kind == yaml.ScalarNode {
			if at, seen := first[k.Value]; seen {
				out[at], out[at+1] = k, pairs[i+1]
				continue
			}
			first[k.Value] = len(out)
		}
		out = append(out, k, pairs[i+1])
	}
	return out
}
