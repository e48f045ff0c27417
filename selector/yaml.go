package selector

import (
	"bytes"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

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

// notPlain are the styles that keep a scalar a string in PyYAML.
const notPlain = yaml.TaggedStyle | yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle

// aliasHeadroom is how many nodes aliases may add beyond twice the document's own.
const aliasHeadroom = 1_000_000

type resolver struct {
	path    string
	budget  int                 // nodes the resolved tree may still hold
	active  map[*yaml.Node]bool // mappings and sequences being resolved (alias cycles)
	spelled spellings
}

// spellings holds, for the resolved numbers whose text is not their
// canonical value (`4:40` is 280, `010` is 8), the text as written, so
// errors can say how Ansible read it.
type spellings map[*yaml.Node]string

func resolveYAML(path string, n *yaml.Node) (*yaml.Node, spellings, error) {
	r := &resolver{path: path, budget: 2*countNodes(n) + aliasHeadroom, active: map[*yaml.Node]bool{}, spelled: spellings{}}
	root, err := r.node(n, false)
	return root, r.spelled, err
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
		if !isKey && n.Style&notPlain == 0 {
			tag, value, err := yaml11Plain(n.Value)
			if err != nil {
				return nil, inputErrorf("%s:%d: %v", r.path, n.Line, err)
			}
			if (tag == "!!int" || tag == "!!float") && value != n.Value {
				r.spelled[&c] = n.Value
			}
			c.Tag, c.Value = tag, value
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

// Locating syntax errors.
//
// yaml.v3 (v3.0.1) often names a line that is not the culprit's. It reports
// one of two marks: the start of the construct being read (the '{' of a flow
// mapping, an opening quote, the first key of a block mapping) or the token
// where reading failed. Parser errors give the mark's 0-based line (one less
// than an editor shows), scanner errors the 1-based one; a construct that
// starts on the first line is replaced by the failing token's mark; and an
// indentation error names the enclosing mapping, not the line that breaks
// it. The message carries neither mark nor kind, so:
//
//   - every parse is of "\n"+document, so no mark sits on yaml.v3's line 0
//     and the message always names the construct when there is one;
//   - for an unclosed '{', '[' or quote the culprit is that construct, and
//     its line follows from the number reported and the problem's kind;
//   - otherwise the culprit is the first line k such that the document cut
//     after line k fails with exactly the same error: the first badly
//     indented line, the line holding a tab, an unexpected ':'.

// yamlMessage splits yaml.v3's error text into its line (if any) and problem.
var yamlMessage = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// maxQuoted is how much of the culprit line an error quotes.
const maxQuoted = 120

// syntaxError is the input error for err, yaml.v3's failure to parse data.
func syntaxError(path string, data []byte, err error) error {
	m := yamlMessage.FindStringSubmatch(err.Error())
	if m == nil {
		return inputErrorf("%s: malformed YAML: %v", path, err)
	}
	lines := splitLines(bytes.TrimPrefix(data, []byte("\ufeff")))
	k := culpritLine(lines, m[2])
	if k == 0 { // not reproduced (an encoding other than UTF-8): yaml.v3's own words
		if m[1] == "" {
			return inputErrorf("%s: malformed YAML: %s", path, m[2])
		}
		return inputErrorf("%s:%s: malformed YAML: %s", path, m[1], m[2])
	}
	text := strings.TrimRight(string(lines[k-1]), "\r\n")
	if hint := syntaxHint(m[2], text); hint != "" {
		return inputErrorf("%s:%d: malformed YAML: %s (%s): %q", path, k, m[2], hint, clip(text))
	}
	return inputErrorf("%s:%d: malformed YAML: %s: %q", path, k, m[2], clip(text))
}

// culpritLine is the line (1-based) where problem is, 0 if the document
// does not fail with problem.
func culpritLine(lines [][]byte, problem string) int {
	full := parseProblem(lines)
	m := yamlMessage.FindStringSubmatch(full)
	if m == nil || m[2] != problem {
		return 0
	}
	r, _ := strconv.Atoi(m[1]) // 0: no line
	if lead, ok := unclosedLead(problem); ok && r > lead && r-lead <= len(lines) {
		return r - lead
	}
	fails := func(k int) bool { return parseProblem(lines[:k]) == full }
	// The named mark is on line r-1 (scanner errors) or r (parser errors),
	// and a cut before it cannot reproduce the message. Past the failing
	// token every cut fails the same way, before it none does: search for
	// the boundary. The whole document fails (k = len(lines)).
	lo := max(1, r-1)
	if lo > len(lines) {
		return len(lines)
	}
	return lo + sort.Search(len(lines)-lo, func(i int) bool { return fails(lo + i) })
}

// unclosedLead tells whether problem is a construct left open, whose start
// is the culprit, and by how much yaml.v3's number for a "\n"-led document
// exceeds the start's line: 0 for parser errors, 1 for scanner errors.
func unclosedLead(problem string) (int, bool) {
	switch problem {
	case "did not find expected ',' or '}'", "did not find expected ',' or ']'": // parser: the '{' or '['
		return 0, true
	case "found unexpected end of stream", "found unexpected document indicator": // scanner: the opening quote
		return 1, true
	}
	return 0, false
}

// parseProblem is yaml.v3's error for "\n" followed by lines, "" if it parses.
func parseProblem(lines [][]byte) string {
	doc := append([]byte("\n"), bytes.Join(lines, nil)...)
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil {
		return err.Error()
	}
	return ""
}

// splitLines splits data after each "\n" (the lines an editor numbers).
func splitLines(data []byte) [][]byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// syntaxHint says in plain words what the usual cause of problem is.
func syntaxHint(problem, text string) string {
	indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
	switch {
	case strings.Contains(indent, "\t"):
		return "tab in the indentation: YAML indents with spaces only"
	case problem == "did not find expected ',' or '}'":
		return "a '{' on this line is not closed"
	case problem == "did not find expected ',' or ']'":
		return "a '[' on this line is not closed"
	case problem == "found unexpected end of stream" || problem == "found unexpected document indicator":
		return "a quote on this line is not closed"
	case problem == "did not find expected key" || problem == "did not find expected '-' indicator":
		return "this line's indentation does not match the lines above"
	case problem == "mapping values are not allowed in this context":
		return "unexpected ':' here: is the line indented too far, or does a value with ': ' need quotes?"
	}
	return ""
}

// clip shortens text to maxQuoted bytes, at a rune boundary.
func clip(text string) string {
	if len(text) <= maxQuoted {
		return text
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "…"
}
