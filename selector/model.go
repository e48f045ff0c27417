package selector

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Cluster is one PostgreSQL cluster: its members and its services.
type Cluster struct {
	Name     string
	Members  []*Host // inventory order
	Services []*Service
	Provider string // pg_service_provider group when it exists, "" for local HAProxy
}

// Model is a validated inventory: everything render needs except live state.
type Model struct {
	Inventory *Inventory
	Clusters  []*Cluster // sorted by name
	byName    map[string]*Cluster
}

// Cluster returns the named cluster.
func (m *Model) Cluster(name string) (*Cluster, bool) {
	c, ok := m.byName[name]
	return c, ok
}

// Load reads, parses and validates an inventory file.
func Load(path string) (*Model, error) {
	inv, err := LoadInventory(path)
	if err != nil {
		return nil, err
	}
	return NewModel(inv)
}

var validRoles = map[string]bool{"primary": true, "replica": true, "standby": true, "offline": true, "delayed": true}

// NewModel validates an inventory and builds its clusters and services.
func NewModel(inv *Inventory) (*Model, error) {
	m := &Model{Inventory: inv, byName: map[string]*Cluster{}}
	for _, h := range inv.Hosts {
		v, ok := h.Vars["pg_cluster"]
		if !ok || v == nil {
			continue
		}
		name, ok := v.(string)
		if !ok || name == "" {
			return nil, inputErrorf("%s:%d: host %s: pg_cluster %s is not a cluster name", inv.Path, h.Line("pg_cluster"), h.Name, describe(v))
		}
		c := m.byName[name]
		if c == nil {
			c = &Cluster{Name: name}
			m.byName[name] = c
			m.Clusters = append(m.Clusters, c)
		}
		c.Members = append(c.Members, h)
	}
	sort.Slice(m.Clusters, func(i, j int) bool { return m.Clusters[i].Name < m.Clusters[j].Name })
	exprs := &exprCache{byText: map[string]*Expr{}}
	for _, c := range m.Clusters {
		if err := m.validateMembers(c); err != nil {
			return nil, err
		}
		if err := m.buildServices(c, exprs); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Model) at(h *Host, key string) string {
	return fmt.Sprintf("%s:%d: host %s", m.Inventory.Path, h.Line(key), h.Name)
}

func (m *Model) validateMembers(c *Cluster) error {
	seqs := map[int]string{}
	var primaries []string
	for _, h := range c.Members {
		seq, ok := h.Vars["pg_seq"]
		if !ok || seq == nil {
			return inputErrorf("%s:%d: cluster %s host %s: missing pg_seq", m.Inventory.Path, h.EntryLine("pg_cluster"), c.Name, h.Name)
		}
		n, isInt := intValue(seq)
		if !isInt || n < 0 {
			return inputErrorf("%s (cluster %s): pg_seq %s is not a non-negative integer", m.at(h, "pg_seq"), c.Name, describe(seq))
		}
		if other, dup := seqs[n]; dup {
			return inputErrorf("%s:%d: host %s (cluster %s): duplicate pg_seq %d, also used by host %s", m.Inventory.Path, h.EntryLine("pg_cluster"), h.Name, c.Name, n, other)
		}
		seqs[n] = h.Name
		role, ok := h.Vars["pg_role"].(string)
		if !ok {
			if v, present := h.Vars["pg_role"]; present && v != nil {
				return inputErrorf("%s (cluster %s): pg_role %s is not one of primary, replica, standby, offline, delayed", m.at(h, "pg_role"), c.Name, describe(v))
			}
			return inputErrorf("%s:%d: cluster %s host %s: missing pg_role", m.Inventory.Path, h.EntryLine("pg_cluster"), c.Name, h.Name)
		}
		if !validRoles[role] {
			return inputErrorf("%s (cluster %s): pg_role %q is not one of primary, replica, standby, offline, delayed", m.at(h, "pg_role"), c.Name, role)
		}
		if role == "primary" {
			primaries = append(primaries, h.Name)
		}
		if err := m.validateNumbers(c, h); err != nil {
			return err
		}
	}
	if len(primaries) != 1 {
		return inputErrorf("%s: cluster %s must have exactly one pg_role primary, has %d (%s)", m.Inventory.Path, c.Name, len(primaries), strings.Join(primaries, ", "))
	}
	return nil
}

func (m *Model) validateNumbers(c *Cluster, h *Host) error {
	if v, ok := h.Vars["pg_weight"]; ok && v != nil {
		if n, isInt := TemplateInt(v); !isInt || n < 0 || n > 256 {
			return inputErrorf("%s (cluster %s): pg_weight %s is outside 0-256", m.at(h, "pg_weight"), c.Name, describe(v))
		}
	}
	for _, key := range []string{"pg_port", "pgbouncer_port", "patroni_port", "pg_exporter_port"} {
		if v, ok := h.Vars[key]; ok && v != nil {
			if n, isInt := TemplateInt(v); !isInt || n < 1 || n > 65535 {
				return inputErrorf("%s (cluster %s): %s %s is not a port number", m.at(h, key), c.Name, key, describe(v))
			}
		}
	}
	return nil
}

// configHost is the host whose variables configure the cluster's services:
// the inventory primary, which is the host Pigsty renders remote services from.
func configHost(c *Cluster) *Host {
	for _, h := range c.Members {
		if h.Vars["pg_role"] == "primary" {
			return h
		}
	}
	return c.Members[0]
}

func (m *Model) buildServices(c *Cluster, exprs *exprCache) error {
	cfg := configHost(c)
	raws, schema, err := serviceDefs(cfg)
	if err != nil {
		return located(m.Inventory.Path, "cluster "+c.Name+": ", err)
	}
	b := &serviceBuilder{cluster: c.Name, cfg: cfg, exprs: exprs}
	byName := map[string]int{}
	for _, r := range raws {
		s, err := b.build(r, schema)
		if err != nil {
			return located(m.Inventory.Path, "", err)
		}
		s.at = m.Inventory.Path
		if s.Line > 0 {
			s.at += ":" + strconv.Itoa(s.Line)
		}
		// A later definition with the same name replaces the earlier one, as
		// Pigsty's later template write replaces the same file.
		if i, dup := byName[s.Name]; dup {
			c.Services[i] = s
			continue
		}
		byName[s.Name] = len(c.Services)
		c.Services = append(c.Services, s)
	}
	ports := map[int]string{}
	for _, s := range c.Services {
		if other, dup := ports[s.Port]; dup {
			return inputErrorf("%s: cluster %s: services %s and %s both use port %d", s.at, c.Name, other, s.Name, s.Port)
		}
		ports[s.Port] = s.Name
	}
	if p, ok := cfg.Vars["pg_service_provider"].(string); ok && p != "" {
		if _, exists := m.Inventory.Groups[p]; exists {
			c.Provider = p
		}
	}
	return nil
}

// located turns an error that may start with "line N: " into one that
// starts with "file:N: " (or "file: "), subject coming next.
func located(path, subject string, err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok && strings.Trim(n, "0123456789") == "" {
			return inputErrorf("%s:%s: %s%s", path, n, subject, tail)
		}
	}
	return inputErrorf("%s: %s%s", path, subject, msg)
}

func intValue(v any) (int, bool) {
	f, ok := v.(float64)
	if !ok || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

// TemplateInt reads a value Pigsty's templates print as an integer: a whole
// number, or a string holding a plain decimal integer (`port: "5440"`
// renders `bind *:5440` just as `port: 5440` does).
func TemplateInt(v any) (int, bool) {
	s, ok := v.(string)
	if !ok {
		return intValue(v)
	}
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Seq returns a host's pg_seq (validated by NewModel).
func Seq(h Record) int {
	n, _ := intValue(h["pg_seq"])
	return n
}

// InstanceName is Pigsty's <pg_cluster>-<pg_seq>, also Patroni's member name.
func InstanceName(cluster string, seq int) string {
	return cluster + "-" + strconv.Itoa(seq)
}

// Select returns the clusters whose services the given HAProxy node carries,
// narrowed by names. With node "" every cluster is served; with no names,
// every cluster of the node.
func (m *Model) Select(node string, names []string) ([]*Cluster, error) {
	if len(m.Clusters) == 0 {
		return nil, inputErrorf("%s: no host sets pg_cluster, so there is no PostgreSQL cluster to serve", m.Inventory.Path)
	}
	chosen := m.Clusters
	if node != "" {
		h, ok := m.Inventory.Host(node)
		if !ok {
			return nil, inputErrorf("%s: --node %s is not an inventory host", m.Inventory.Path, node)
		}
		chosen = m.carriedBy(h)
	}
	if len(names) == 0 {
		return chosen, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := m.byName[n]; !ok {
			return nil, inputErrorf("%s: unknown cluster %s (--cluster)", m.Inventory.Path, n)
		}
		want[n] = true
	}
	var out []*Cluster
	for _, c := range chosen {
		if want[c.Name] {
			out = append(out, c)
			delete(want, c.Name)
		}
	}
	// A --cluster the node does not carry: serving nothing for it would
	// look like success.
	for _, n := range names {
		if !want[n] {
			continue
		}
		onto := "its own members"
		if p := m.byName[n].Provider; p != "" {
			onto = "the hosts of group " + p
		}
		return nil, inputErrorf("%s: --node %s does not carry cluster %s (--cluster): Pigsty renders its services onto %s", m.Inventory.Path, node, n, onto)
	}
	return out, nil
}

// carriedBy mirrors Pigsty's service_local/service_remote choice: a node
// carries its own cluster unless that cluster has a provider group, plus
// every cluster whose provider is a group the node belongs to.
func (m *Model) carriedBy(h *Host) []*Cluster {
	in := map[string]bool{}
	for _, g := range h.Groups {
		in[g] = true
	}
	own, _ := h.Vars["pg_cluster"].(string)
	var out []*Cluster
	for _, c := range m.Clusters {
		if (c.Provider == "" && c.Name == own) || (c.Provider != "" && in[c.Provider]) {
			out = append(out, c)
		}
	}
	return out
}
