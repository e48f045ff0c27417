package selector

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/pgsvc/pgsvc/selector/jmes"
)

// Cluster is one PostgreSQL cluster: its members and its services.
type Cluster struct {
	Name    string
	Members []*Host // inventory order
	// Services are built from the primary's variables, as Pigsty renders
	// remote services and pgsvc renders every cluster without --node; nil
	// when those do not build (Select reports why: with --node, a member
	// renders its own cluster from its own variables, which may be fine).
	Services []*Service
	Provider string // pg_service_provider group when it exists, "" for local HAProxy

	servicesErr error // why Services are nil
}

// Model is a validated inventory: everything render needs except live state.
type Model struct {
	Inventory *Inventory
	Clusters  []*Cluster // sorted by name
	byName    map[string]*Cluster
	exprs     *exprCache
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
// What every render of a cluster reads (its members' identities, roles,
// weights and ports) is checked here; its service definitions depend on
// the variables of the host that renders them, so Select reports theirs.
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
	m.exprs = &exprCache{byText: map[string]*Expr{}}
	for _, c := range m.Clusters {
		if err := m.validateMembers(c); err != nil {
			return nil, err
		}
		m.buildServices(c, m.exprs)
	}
	return m, nil
}

func (m *Model) at(h *Host, key string) string {
	return fmt.Sprintf("%s:%d: host %s", m.Inventory.Path, h.Line(key), h.Name)
}

func (m *Model) validateMembers(c *Cluster) error {
	seqs := map[string]string{}
	var primaries []string
	for _, h := range c.Members {
		seq, ok := h.Vars["pg_seq"]
		if !ok || seq == nil {
			return inputErrorf("%s:%d: cluster %s host %s: missing pg_seq", m.Inventory.Path, h.EntryLine("pg_cluster"), c.Name, h.Name)
		}
		if !validSeq(seq) {
			return inputErrorf("%s (cluster %s): pg_seq %s is not a non-negative integer", m.at(h, "pg_seq"), c.Name, describe(seq))
		}
		name := InstanceName(c.Name, Seq(h.Vars))
		if other, dup := seqs[name]; dup {
			return inputErrorf("%s:%d: host %s (cluster %s): duplicate pg_seq %s, also used by host %s", m.Inventory.Path, h.EntryLine("pg_cluster"), h.Name, c.Name, describe(seq), other)
		}
		seqs[name] = h.Name
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
		n, isInt := TemplateInt(v)
		if !isInt {
			return inputErrorf("%s (cluster %s): %s", m.at(h, "pg_weight"), c.Name, notTemplateInt("pg_weight", v, weightUse))
		}
		if n < 0 || n > 256 {
			return inputErrorf("%s (cluster %s): %s", m.at(h, "pg_weight"), c.Name,
				outOfRange("pg_weight", v, n, h.spelling("pg_weight"), "is outside 0-256", weightUse))
		}
	}
	for _, key := range []string{"pg_port", "pgbouncer_port", "patroni_port", "pg_exporter_port"} {
		if v, ok := h.Vars[key]; ok && v != nil {
			n, isInt := TemplateInt(v)
			if !isInt {
				return inputErrorf("%s (cluster %s): %s", m.at(h, key), c.Name, notTemplateInt(key, v, portUses[key]))
			}
			if n < 1 || n > 65535 {
				return inputErrorf("%s (cluster %s): %s", m.at(h, key), c.Name,
					outOfRange(key, v, n, h.spelling(key), "is not a port number", portUses[key]))
			}
		}
	}
	return nil
}

// validSeq: a non-negative integer, or a string of decimal digits (Pigsty
// accepts `pg_seq: "1"` and prints `pg_seq: 08`, a string to YAML 1.1, as 08).
func validSeq(v any) bool {
	switch t := v.(type) {
	case string:
		return t != "" && len(t) <= 18 && strings.Trim(t, "0123456789") == ""
	}
	n, ok := intValue(v)
	return ok && n >= 0
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

func (m *Model) buildServices(c *Cluster, exprs *exprCache) {
	c.Services, c.servicesErr = m.servicesFrom(c, configHost(c), exprs)
	if p, ok := configHost(c).Vars["pg_service_provider"].(string); ok && p != "" {
		if _, exists := m.Inventory.Groups[p]; exists {
			c.Provider = p
		}
	}
}

// servicesFrom builds cluster c's services from the variables of host cfg.
func (m *Model) servicesFrom(c *Cluster, cfg *Host, exprs *exprCache) ([]*Service, error) {
	raws, schema, err := serviceDefs(cfg)
	if err != nil {
		return nil, located(m.Inventory.Path, "cluster "+c.Name+": ", err)
	}
	b := &serviceBuilder{cluster: c.Name, cfg: cfg, exprs: exprs}
	byName := map[string]int{}
	var services []*Service
	for _, r := range raws {
		s, err := b.build(r, schema)
		if err != nil {
			return nil, located(m.Inventory.Path, "", err)
		}
		s.at = m.Inventory.Path
		if s.Line > 0 {
			s.at += ":" + strconv.Itoa(s.Line)
		}
		// A later definition with the same name replaces the earlier one, as
		// Pigsty's later template write replaces the same file.
		if i, dup := byName[s.Name]; dup {
			services[i] = s
			continue
		}
		byName[s.Name] = len(services)
		services = append(services, s)
	}
	ports := map[int]string{}
	for _, s := range services {
		if other, dup := ports[s.Port]; dup {
			return nil, inputErrorf("%s: cluster %s: services %s and %s both use port %d", s.at, c.Name, other, s.Name, s.Port)
		}
		ports[s.Port] = s.Name
	}
	return services, nil
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

// intValue is v as an int when the inventory holds an integer there: an
// int from YAML, or a whole float64 (overrides and older callers).
func intValue(v any) (int, bool) {
	switch t := v.(type) {
	case int:
		return t, true
	case int64:
		if t == int64(int(t)) {
			return int(t), true
		}
	case float64:
		if t == float64(int(t)) {
			return int(t), true
		}
	}
	return 0, false
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

// Seq returns a host's pg_seq as Pigsty prints it in the instance name
// <pg_cluster>-<pg_seq> (validated by NewModel), which is also Patroni's
// member name: an integer in decimal, a string of digits as written
// (`pg_seq: 08` is "08" to Ansible), a float as Python prints it
// (`pg_seq: 1.0` names pg-test-1.0, not pg-test-1).
func Seq(h Record) string {
	switch v := h["pg_seq"].(type) {
	case string:
		return v
	case float64:
		return pyFloat(v)
	}
	n, _ := intValue(h["pg_seq"])
	return strconv.Itoa(n)
}

// pyFloat is a float as Jinja prints it (Python's str): 1.0, 1e+16, inf.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s, _ := jmes.MarshalPython(f) // finite: never fails
	return s
}

// InstanceName is Pigsty's <pg_cluster>-<pg_seq>, also Patroni's member name.
func InstanceName(cluster, seq string) string {
	return cluster + "-" + seq
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
		return chosen, servicesErr(chosen)
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
	return out, servicesErr(out)
}

// servicesErr is why the services of the clusters do not build, from the
// variables they are rendered from; nil when they all do.
func servicesErr(clusters []*Cluster) error {
	var errs []error
	for _, c := range clusters {
		if c.servicesErr != nil {
			errs = append(errs, c.servicesErr)
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// carriedBy mirrors Pigsty's service_local/service_remote choice: a node
// carries its own cluster unless that cluster has a provider group, plus
// every cluster whose provider is a group the node belongs to. Its own
// cluster's services come from its own variables, as service_local renders
// them on each member; remote ones from the primary's, as service_remote.
func (m *Model) carriedBy(h *Host) []*Cluster {
	in := map[string]bool{}
	for _, g := range h.Groups {
		in[g] = true
	}
	own, _ := h.Vars["pg_cluster"].(string)
	var out []*Cluster
	for _, c := range m.Clusters {
		switch {
		case c.Provider == "" && c.Name == own:
			// Validated from the node's own variables, not the primary's:
			// an error names the file:line of the node's own variable.
			local := *c
			local.Services, local.servicesErr = m.servicesFrom(c, h, m.exprs)
			out = append(out, &local)
		case c.Provider != "" && in[c.Provider]:
			out = append(out, c)
		}
	}
	return out
}
