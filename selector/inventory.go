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
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pgsvc/pgsvc/selector/jmes"
)

// Record is one host's variables as a JMESPath-ready value: strings, bools,
// int64 (Ansible's int) and float64 (its float) numbers, []any, and
// *jmes.Object for mappings (in the order written, as Python's dicts).
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
	spelled spellings   // the inventory's, shared by its hosts
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
	if n := h.item(key, i); n != nil {
		return n.Line
	}
	return 0
}

// item is the node of item i of the list variable key, nil if unknown.
func (h *Host) item(key string, i int) *yaml.Node {
	n := h.src[key].value
	if n == nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
		return nil
	}
	return n.Content[i]
}

// spelling is how the winning value of key is written when YAML 1.1 read
// that text as another number (`4:40` is 280), "" otherwise.
func (h *Host) spelling(key string) string { return h.spelled[h.src[key].value] }

// spellingIn is spelling for key of the mapping node n (a service entry).
func (h *Host) spellingIn(n *yaml.Node, key string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	if v := lookup(n, key); v != nil {
		return h.spelled[v]
	}
	return ""
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

// ParseInventory parses inventory YAML as Ansible's yaml inventory plugin
// reads it; path is used in error messages only.
func ParseInventory(path string, data []byte) (*Inventory, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(path, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, inputErrorf("%s: inventory is empty", path)
	}
	root, spelled, err := resolveYAML(path, doc.Content[0])
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, inputErrorf("%s:%d: inventory must be a mapping of groups (usually one key, all)", path, root.Line)
	}
	p := &parser{path: path, inv: &Inventory{Path: path, Groups: map[string][]string{}, byName: map[string]*Host{}},
		hostVars: map[string][]*yaml.Node{}, direct: map[string][]string{}, groups: map[string]*groupDef{}, spelled: spelled}
	p.define("all", 0)
	// Every top-level key is a group; those that are not all become its
	// children, as Ansible's reconcile_inventory makes them.
	for i := 0; i+1 < len(root.Content); i += 2 {
		name := root.Content[i].Value
		if err := p.group(name, root.Content[i+1]); err != nil {
			return nil, err
		}
	}
	if err := p.merge(); err != nil {
		return nil, err
	}
	return p.inv, nil
}

// groupDef is one group as the inventory defines it, over all the places
// that mention it.
type groupDef struct {
	name     string
	line     int
	vars     []*yaml.Node // key, value pairs in the order they were set
	parents  []string
	priority int // ansible_group_priority, 1 unless set
	depth    int // longest path from all, computed by merge
}

type parser struct {
	path     string
	inv      *Inventory
	hostVars map[string][]*yaml.Node // host -> key, value pairs in order (later ones win, as set_variable does)
	direct   map[string][]string     // host -> groups that list it, in order
	groups   map[string]*groupDef
	order    []string // group names in order of first mention
	spelled  spellings
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

func (p *parser) define(name string, line int) *groupDef {
	g := p.groups[name]
	if g == nil {
		g = &groupDef{name: name, line: line, priority: 1}
		p.groups[name] = g
		p.order = append(p.order, name)
	}
	return g
}

func (p *parser) group(name string, n *yaml.Node) error {
	if name == "" {
		return inputErrorf("%s:%d: empty group name", p.path, n.Line)
	}
	g := p.define(name, n.Line)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s must be a mapping of hosts, vars and children", p.path, n.Line, name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value == "hosts" && val.Kind == yaml.ScalarNode && !isNull(val) {
			// Ansible takes `hosts: h1` as `hosts: {h1: }`.
			val = &yaml.Node{Kind: yaml.MappingNode, Line: val.Line, Content: []*yaml.Node{val, {Kind: yaml.ScalarNode, Tag: "!!null", Line: val.Line}}}
		}
		var err error
		switch key.Value {
		case "hosts":
			err = p.hosts(name, val)
		case "vars":
			err = p.groupVars(g, val)
		case "children":
			err = p.children(name, val)
		default:
			return inputErrorf("%s:%d: group %s: unknown key %q (want hosts, vars or children)", p.path, key.Line, name, key.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) groupVars(g *groupDef, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s: vars must be a mapping", p.path, n.Line, g.name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value != "ansible_group_priority" {
			g.vars = append(g.vars, key, val)
			continue
		}
		// Ansible's Group.set_variable: int(value), and not a variable.
		prio, ok := groupPriority(val)
		if !ok {
			return inputErrorf("%s:%d: group %s: ansible_group_priority %s is not an integer", p.path, val.Line, g.name, describeNode(val))
		}
		g.priority = prio
	}
	return nil
}

func groupPriority(n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	switch n.Tag {
	case "!!int":
		v, err := strconv.Atoi(n.Value)
		return v, err == nil
	case "!!str":
		v, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(n.Value), "_", ""))
		return v, err == nil
	}
	return 0, false
}

func (p *parser) children(parent string, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		// `children: g` is `children: {g: }`.
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Content: []*yaml.Node{n, {Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line}}}
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s: children must be a mapping of groups", p.path, n.Line, parent)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		child := n.Content[i].Value
		if child == parent {
			return inputErrorf("%s:%d: group %s lists itself as a child", p.path, n.Content[i].Line, parent)
		}
		if err := p.group(child, n.Content[i+1]); err != nil {
			return err
		}
		g := p.groups[child]
		if !slices.Contains(g.parents, parent) {
			g.parents = append(g.parents, parent)
		}
	}
	return nil
}

func (p *parser) hosts(group string, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return inputErrorf("%s:%d: group %s: hosts must be a mapping keyed by host", p.path, n.Line, group)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value == "" {
			return inputErrorf("%s:%d: group %s: empty host name", p.path, key.Line, group)
		}
		names, port, err := expandHostPattern(key.Value)
		if err != nil {
			return inputErrorf("%s:%d: group %s: host %q: %v", p.path, key.Line, group, key.Value, err)
		}
		if !isNull(val) && val.Kind != yaml.MappingNode {
			return inputErrorf("%s:%d: host %s: variables must be a mapping, got %s", p.path, val.Line, key.Value, describeNode(val))
		}
		for _, name := range names {
			p.addHost(name, group, key, val, port)
		}
	}
	return nil
}

// addHost is Ansible's add_host followed by the host's variables: a port
// in the host key becomes ansible_port when the host is first seen.
func (p *parser) addHost(name, group string, key, val *yaml.Node, port int) {
	h, ok := p.inv.byName[name]
	if !ok {
		h = &Host{Name: name}
		p.inv.byName[name] = h
		p.inv.Hosts = append(p.inv.Hosts, h)
		if port > 0 {
			p.hostVars[name] = append(p.hostVars[name],
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "ansible_port", Line: key.Line},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(port), Line: key.Line})
		}
	}
	h.entries = append(h.entries, hostEntry{group: group, line: key.Line})
	if !isNull(val) {
		p.hostVars[name] = append(p.hostVars[name], val.Content...)
	}
	if !slices.Contains(p.direct[name], group) {
		p.direct[name] = append(p.direct[name], group)
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

// depths sets every group's depth, its longest path from all (Ansible's
// add_child_group), refusing a loop of children as Ansible does.
func (p *parser) depths() error {
	const visiting = -1
	done := map[string]bool{}
	var visit func(g *groupDef, path []string) error
	visit = func(g *groupDef, path []string) error {
		if done[g.name] {
			return nil
		}
		if g.depth == visiting {
			return inputErrorf("%s:%d: group %s has a loop of children (%s)", p.path, g.line, g.name, strings.Join(append(path, g.name), " > "))
		}
		g.depth = visiting
		depth := 0
		if g.name != "all" {
			depth = 1 // a group without parents is a child of all
		}
		for _, parent := range g.parents {
			pg := p.groups[parent]
			if err := visit(pg, append(path, g.name)); err != nil {
				return err
			}
			depth = max(depth, pg.depth+1)
		}
		g.depth = depth
		done[g.name] = true
		return nil
	}
	for _, name := range p.order {
		if err := visit(p.groups[name], nil); err != nil {
			return err
		}
	}
	return nil
}

// ancestors adds g and every group above it to set.
func (p *parser) ancestors(name string, set map[string]bool) {
	if set[name] {
		return
	}
	set[name] = true
	for _, parent := range p.groups[name].parents {
		p.ancestors(parent, set)
	}
}

// merge computes every host's groups and variables with Ansible's
// precedence: groups by depth, then ansible_group_priority, then name
// (sort_groups), all's vars first and the host's own last.
func (p *parser) merge() error {
	if err := p.depths(); err != nil {
		return err
	}
	if _, ok := p.groups["ungrouped"]; !ok {
		p.define("ungrouped", 0).depth = 1
	}
	for _, h := range p.inv.Hosts {
		in := map[string]bool{}
		for _, g := range p.direct[h.Name] {
			p.ancestors(g, in)
		}
		in["all"] = true
		if len(in) == 1 || (len(in) == 2 && in["ungrouped"]) {
			in["ungrouped"] = true
		}
		groups := make([]*groupDef, 0, len(in))
		for name := range in {
			groups = append(groups, p.groups[name])
		}
		sort.Slice(groups, func(i, j int) bool {
			a, b := groups[i], groups[j]
			if a.depth != b.depth {
				return a.depth < b.depth
			}
			if a.priority != b.priority {
				return a.priority < b.priority
			}
			return a.name < b.name
		})
		h.Vars = Record{}
		h.src = map[string]varSource{}
		h.spelled = p.spelled
		h.Groups = h.Groups[:0]
		for _, g := range groups {
			if err := p.apply(h, g.vars, g.name); err != nil {
				return err
			}
			if g.name != "all" {
				h.Groups = append(h.Groups, g.name)
			}
		}
		if err := p.apply(h, p.hostVars[h.Name], ""); err != nil {
			return err
		}
		sort.Strings(h.Groups)
		for i := range h.entries {
			h.entries[i].depth = p.groups[h.entries[i].group].depth
		}
		setMagicVars(h)
	}
	for _, h := range p.inv.Hosts {
		for _, g := range h.Groups {
			p.inv.Groups[g] = append(p.inv.Groups[g], h.Name)
		}
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
		names = append(names, g)
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
func (p *parser) apply(h *Host, pairs []*yaml.Node, group string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		key, val := pairs[i], pairs[i+1]
		v, err := nodeValue(val)
		if err != nil {
			owner := "group " + group
			if group == "" {
				owner = "host " + h.Name
			}
			return inputErrorf("%s:%d: %s: variable %s: %v", p.path, val.Line, owner, key.Value, err)
		}
		h.Vars[key.Value] = v
		h.src[key.Value] = varSource{line: key.Line, value: val, group: group}
	}
	return nil
}

// ParseValue reads one YAML value as the inventory's values are read
// (YAML 1.1, as Ansible does): `pgsvc set pg_weight=0o144` stores the
// string Ansible would see, `1:40` the integer 100. A mapping comes back
// as a map[string]any (overrides hold scalars: callers refuse it by that
// type); mappings inside a list keep their order as in the inventory.
func ParseValue(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	n, _, err := resolveYAML("value", doc.Content[0])
	if err != nil {
		return nil, err
	}
	v, err := nodeValue(n)
	if o, ok := v.(*jmes.Object); ok {
		return goMap(o), err
	}
	return v, err
}

// nodeValue is a resolved YAML node (resolveYAML) as Python holds it in
// Ansible's hostvars: a mapping is a *jmes.Object in the order written,
// as PyYAML builds a dict (so keys(), values() and `*` see that order); a
// sequence []any; a scalar as yaml.v3 decodes its (YAML 1.1) tag, with
// int64 for Ansible's int and float64 for its float, so that 1 and 1.0
// stay apart where Python keeps them apart (to_string, templates).
func nodeValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		o := jmes.NewObject()
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := mappingKey(n.Content[i])
			if err != nil {
				return nil, err
			}
			v, err := nodeValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			o.Set(k, v)
		}
		return o, nil
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			v, err := nodeValue(item)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeScalar(v), nil
}

// mappingKey is a key as a string: keys are read as yaml.v3 reads them
// (resolveYAML leaves them alone) and printed, `1:` as "1".
func mappingKey(k *yaml.Node) (string, error) {
	if k.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("a mapping key must be a scalar, got %s", nodeKind(k))
	}
	var v any
	if err := k.Decode(&v); err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return fmt.Sprint(normalizeScalar(v)), nil
}

// normalizeScalar turns yaml.v3's integers into Python's: int64, and a
// float beyond int64 (Python's int has no bound).
func normalizeScalar(v any) any {
	switch t := v.(type) {
	case int:
		return int64(t)
	case uint64:
		return float64(t)
	}
	return v
}

// goMap is o as a Go map (its order is lost).
func goMap(o *jmes.Object) map[string]any {
	m := make(map[string]any, o.Len())
	for _, k := range o.Keys() {
		m[k], _ = o.Get(k)
	}
	return m
}

// mapping is v as a Go map when v is a mapping: inventory mappings are
// ordered *jmes.Object, the built-in defaults Go maps.
func mapping(v any) (map[string]any, bool) {
	switch t := v.(type) {
	case map[string]any:
		return t, true
	case *jmes.Object:
		return goMap(t), true
	}
	return nil, false
}
