// Package selector turns a Pigsty inventory into validated clusters, service
// definitions and per-host variable records, and evaluates service selectors
// (JMESPath) over those records exactly as Pigsty's templates do.
//
// Nothing here performs I/O beyond reading the inventory file it is given.
package selector

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Record is one host's variables as a JMESPath-ready value: strings, bools,
// float64 numbers, []any and map[string]any only.
type Record = map[string]any

// Host is an inventory host with its merged variables.
type Host struct {
	Name   string   // inventory_hostname
	Groups []string // every group the host belongs to, sorted
	// Vars are all.vars < group vars (by depth, then name) < host vars, plus
	// the magic variables inventory_hostname, inventory_hostname_short and
	// group_names, as Ansible's hostvars hold them.
	Vars    Record
	src     map[string]varSource
	entries []hostEntry // where the host is listed, in file order
}

// varSource is where the winning value of a variable was set.
type varSource struct {
	line  int        // line of the variable's key
	value *yaml.Node // the value as written (aliases and merges resolved)
	group string     // the group whose vars set it, "" for the host's own vars
}

// hostEntry is one listing of the host under a group's hosts.
type hostEntry struct {
	group string
	depth int
	line  int
}

// Line returns the inventory line where the winning value of key was set, 0 if unknown.
func (h *Host) Line(key string) int { return h.src[key].line }

// ItemLine returns the line of item i of the list variable key, 0 if unknown.
func (h *Host) ItemLine(key string, i int) int {
	n := h.src[key].value
	if n == nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
		return 0
	}
	return n.Content[i].Line
}

// EntryLine is the line where the host itself is listed, as it relates to
// key: its listing under the group that sets key, or the listing whose own
// variables set it; otherwise (or if neither exists) its listing in the
// deepest group. 0 if unknown.
func (h *Host) EntryLine(key string) int {
	src, set := h.src[key]
	var own, deepest *hostEntry
	for i := range h.entries {
		e := &h.entries[i]
		if set && src.group != "" && e.group == src.group {
			return e.line
		}
		if set && src.group == "" && e.line <= src.line && (own == nil || e.line > own.line) {
			own = e
		}
		if deepest == nil || e.depth >= deepest.depth {
			deepest = e
		}
	}
	switch {
	case own != nil:
		return own.line
	case deepest != nil:
		return deepest.line
	}
	return 0
}

// Inventory is a parsed Pigsty (Ansible YAML) inventory.
type Inventory struct {
	Path   string
	Hosts  []*Host // in order of first appearance
	Groups map[string][]string
	byName map[string]*Host
}

// Host returns the host named name (its inventory_hostname).
func (inv *Inventory) Host(name string) (*Host, bool) {
	h, ok := inv.byName[name]
	return h, ok
}

// InputError is bad input: terminal, never retried. Its message names the
// file, line, cluster, service or host and the offending value.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// IsInputError reports whether err is (or wraps) bad input.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// LoadInventory reads and parses the inventory file at path.
func LoadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return ParseInventory(path, data)
}

// ParseInventory parses inventory YAML; path is used in error messages only.
func ParseInventory(path string, data []byte) (*Inventory, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(path, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, inputErrorf("%s: inventory is empty", path)
	}
	root, err := resolveYAML(path, doc.Content[0])
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, inputErrorf("%s:%d: inventory must be a mapping with an 'all' key", path, root.Line)
	}
	p := &parser{path: path, inv: &Inventory{Path: path, Groups: map[string][]string{}, byName: map[string]*Host{}},
		hostVars: map[string]*yaml.Node{}, membership: map[string]map[string]int{}, groupVars: map[string]*yaml.Node{}}
	all := lookup(root, "all")
	if all == nil {
		return nil, inputErrorf("%s:%d: inventory has no 'all' key", path, root.Line)
	}
	if err := p.group("all", all, 0); err != nil {
		return nil, err
	}
	if err := p.merge(); err != nil {
		return nil, err
	}
	return p.inv, nil
}

type parser struct {
	path       string
	inv        *Inventory
	hostVars   map[string]*yaml.Node     // host -> its own vars mapping (last definition wins, as in Ansible)
	membership map[string]map[string]int // host -> group -> depth
	groupVars  map[string]*yaml.Node     // group -> vars mapping
	groupDepth map[string]int
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (p *parser) group(name string, n *yaml.Node, depth int) error {
	if p.groupDepth == nil {
		p.groupDepth = map[string]int{}
	}
	if d, ok := p.groupDepth[name]; !ok || depth > d {
		p.groupDepth[name] = depth
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s must be a mapping of hosts, vars and children", p.path, n.Line, name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		var err error
		switch key.Value {
		case "hosts":
			err = p.hosts(name, val, depth)
		case "vars":
			if !isNull(val) && val.Kind != yaml.MappingNode {
				return inputErrorf("%s:%d: group %s: vars must be a mapping", p.path, val.Line, name)
			}
			p.groupVars[name] = val
		case "children":
			err = p.children(name, val, depth)
		default:
			return inputErrorf("%s:%d: group %s: unknown key %q (want hosts, vars or children)", p.path, key.Line, name, key.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) children(parent string, n *yaml.Node, depth int) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s: children must be a mapping of groups", p.path, n.Line, parent)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		child := n.Content[i].Value
		if err := p.group(child, n.Content[i+1], depth+1); err != nil {
			return err
		}
		// Hosts of a child group are hosts of the parent too (Ansible).
		for _, h := range p.inv.Groups[child] {
			p.join(h, parent, depth)
		}
	}
	return nil
}

func (p *parser) hosts(group string, n *yaml.Node, depth int) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s: hosts must be a mapping keyed by host", p.path, n.Line, group)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		name := key.Value
		if name == "" {
			return inputErrorf("%s:%d: group %s: empty host name", p.path, key.Line, group)
		}
		if !isNull(val) && val.Kind != yaml.MappingNode {
			return inputErrorf("%s:%d: host %s: variables must be a mapping, got %s", p.path, val.Line, name, describeNode(val))
		}
		h, ok := p.inv.byName[name]
		if !ok {
			h = &Host{Name: name}
			p.inv.byName[name] = h
			p.inv.Hosts = append(p.inv.Hosts, h)
		}
		h.entries = append(h.entries, hostEntry{group: group, depth: depth, line: key.Line})
		if !isNull(val) {
			if prev := p.hostVars[name]; prev != nil {
				// A host defined in several groups: Ansible merges its host vars.
				merged := &yaml.Node{Kind: yaml.MappingNode, Line: prev.Line}
				merged.Content = append(append(merged.Content, prev.Content...), val.Content...)
				val = merged
			}
			p.hostVars[name] = val
		}
		p.join(name, group, depth)
	}
	return nil
}

func (p *parser) join(host, group string, depth int) {
	m := p.membership[host]
	if m == nil {
		m = map[string]int{}
		p.membership[host] = m
	}
	if _, ok := m[group]; !ok {
		p.inv.Groups[group] = append(p.inv.Groups[group], host)
	}
	if d, ok := m[group]; !ok || depth > d {
		m[group] = depth
	}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	default:
		return "a non-mapping value"
	}
}

// merge computes every host's variables with Ansible's precedence.
func (p *parser) merge() error {
	for _, h := range p.inv.Hosts {
		groups := make([]string, 0, len(p.membership[h.Name]))
		for g := range p.membership[h.Name] {
			groups = append(groups, g)
		}
		sort.Slice(groups, func(i, j int) bool {
			di, dj := p.groupDepth[groups[i]], p.groupDepth[groups[j]]
			if di != dj {
				return di < dj
			}
			return groups[i] < groups[j]
		})
		h.Vars = Record{}
		h.src = map[string]varSource{}
		if _, ok := p.membership[h.Name]["all"]; !ok {
			groups = append([]string{"all"}, groups...)
		}
		for _, g := range groups {
			if err := p.apply(h, p.groupVars[g], g); err != nil {
				return err
			}
		}
		if err := p.apply(h, p.hostVars[h.Name], ""); err != nil {
			return err
		}
		h.Groups = make([]string, 0, len(groups))
		for _, g := range groups {
			if g != "all" {
				h.Groups = append(h.Groups, g)
			}
		}
		sort.Strings(h.Groups)
		setMagicVars(h)
	}
	return nil
}

// setMagicVars adds the variables Ansible itself puts into every host's
// hostvars that a selector may read (ansible-core's Host.get_magic_vars);
// they win over inventory variables of the same name.
func setMagicVars(h *Host) {
	h.Vars["inventory_hostname"] = h.Name
	h.Vars["inventory_hostname_short"] = shortName(h.Name)
	names := make([]any, 0, len(h.Groups))
	for _, g := range h.Groups { // sorted, without all
		if g != "ungrouped" {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		// Ansible puts a host that is in no group but all into ungrouped.
		names = append(names, "ungrouped")
	}
	h.Vars["group_names"] = names
}

// shortName is inventory_hostname_short: the name up to its first dot, or
// the whole name when it is an IP address (ansible-core 2.13 and later, the
// versions Pigsty v2+ installs).
func shortName(name string) string {
	if net.ParseIP(name) != nil {
		return name
	}
	short, _, _ := strings.Cut(name, ".")
	return short
}

// apply sets the variables of one vars mapping on h; group is the group
// whose vars they are, "" for the host's own.
func (p *parser) apply(h *Host, vars *yaml.Node, group string) error {
	if vars == nil || isNull(vars) {
		return nil
	}
	for i := 0; i+1 < len(vars.Content); i += 2 {
		key, val := vars.Content[i], vars.Content[i+1]
		var v any
		if err := val.Decode(&v); err != nil {
			owner := "group " + group
			if group == "" {
				owner = "host " + h.Name
			}
			return inputErrorf("%s:%d: %s: variable %s: %v", p.path, val.Line, owner, key.Value, err)
		}
		h.Vars[key.Value] = normalize(v)
		h.src[key.Value] = varSource{line: key.Line, value: val, group: group}
	}
	return nil
}

// normalize converts YAML-decoded values into JSON-like values so JMESPath
// comparisons with backtick literals (float64) behave as in Python.
func normalize(v any) any {
	switch t := v.(type) {
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	default:
		return v
	}
}
