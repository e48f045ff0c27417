// Package reconcile computes the desired HAProxy services from the service
// model and the live Patroni view, diffs desired states into ordered plans,
// and (in the daemon) keeps HAProxy equal to the desired state.
package reconcile

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pgsvc/pgsvc/selector"
)

// Slot says how a cluster member takes part in a service.
type Slot int

// A member is an active server, a backup server, or out of the service.
const (
	Out Slot = iota
	Active
	Backup
)

func (s Slot) String() string {
	switch s {
	case Active:
		return "active"
	case Backup:
		return "backup"
	default:
		return "out"
	}
}

// Server is one cluster member as a server of one service.
type Server struct {
	Name      string // <cluster>-<seq>, Patroni's member name
	Host      string // inventory_hostname
	Port      int
	CheckPort int // 0: no health check
	CheckSSL  bool
	Weight    int
	Slot      Slot
	Role      string // pg_role after the live overlay, for status and logs
	Member    int    // position of the member in the inventory
	// Drained: the instance's pgsvc_drain is true (pgsvc drain), so it is
	// out of the service whatever the selectors pick (its slots drain:
	// sessions stay, no new one lands).
	Drained bool
	// DrainKept: drained, but kept in this service because it is the
	// primary and the service admits only the primary (see drainedIn).
	DrainKept bool
}

// Service is the desired state of one listen section.
type Service struct {
	Name      string // <cluster>-<service>: listen section and file name
	Cluster   string
	Service   string
	IP        string
	Port      int
	Maxconn   int
	Balance   string
	HTTPCheck bool
	CheckURI  string
	CheckCode int
	Options   string
	// Servers lists every cluster member: first the servers Pigsty renders,
	// in Pigsty's order, then the members out of the service, in inventory
	// order. Every member keeps a place so membership changes are live.
	Servers []Server
}

// DeclarationOrder is the order the service's server slots are written in.
// Inventory order keeps a file's structure fixed whatever the roles, so
// membership changes stay runtime changes. But HAProxy sends traffic to the
// first usable backup only (Pigsty never sets `option allbackups`), and
// `balance first` fills servers in declaration order: when Pigsty's order of
// those servers differs from inventory order, Pigsty's order is kept, and a
// role change that reorders them is a structural change (one reload).
func (s *Service) DeclarationOrder() []Server {
	byMember := slices.Clone(s.Servers)
	sort.SliceStable(byMember, func(i, j int) bool { return byMember[i].Member < byMember[j].Member })
	sameOrder := func(slot Slot) bool {
		return slices.Equal(membersIn(s.Servers, slot), membersIn(byMember, slot))
	}
	if sameOrder(Backup) && (s.Balance != "first" || sameOrder(Active)) {
		return byMember
	}
	return slices.Clone(s.Servers)
}

func membersIn(servers []Server, slot Slot) []int {
	var out []int
	for _, sv := range servers {
		if sv.Slot == slot {
			out = append(out, sv.Member)
		}
	}
	return out
}

// Bind is the listen address, e.g. "*:5433".
func (s *Service) Bind() string { return s.IP + ":" + strconv.Itoa(s.Port) }

// ChecksPrimary reports whether the service admits only the primary, judged
// by Patroni's endpoints that return 200 on the leader alone.
func (s *Service) ChecksPrimary() bool {
	switch s.CheckURI {
	case "/", "/primary", "/master", "/read-write":
		return s.HTTPCheck
	}
	return false
}

// Server returns the named server.
func (s *Service) Server(name string) (Server, bool) {
	for _, sv := range s.Servers {
		if sv.Name == name {
			return sv, true
		}
	}
	return Server{}, false
}

// Desired is the desired state of every service one HAProxy carries, sorted
// by name. It is a plain value: render, dry-run and apply all read it.
type Desired struct {
	Services []Service
}

// Service returns the named service.
func (d *Desired) Service(name string) (*Service, bool) {
	i := sort.Search(len(d.Services), func(i int) bool { return d.Services[i].Name >= name })
	if i < len(d.Services) && d.Services[i].Name == name {
		return &d.Services[i], true
	}
	return nil, false
}

// Live is the live input to the desired state: per-cluster Patroni views and
// operator overrides. The zero value is the static (inventory-only) view.
type Live struct {
	Clusters  map[string]selector.ClusterLive
	Overrides selector.Overrides
}

// Compute evaluates every service of the given clusters against the live
// view. sameNode says the clusters share one HAProxy (a --node scope), so
// their binds must not collide. All errors are reported, joined.
func Compute(clusters []*selector.Cluster, live Live, sameNode bool) (Desired, error) {
	var d Desired
	var errs []error
	for _, c := range clusters {
		records := c.Records(live.Clusters[c.Name], live.Overrides)
		for _, def := range c.Services {
			svc, err := buildService(c, def, records)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			d.Services = append(d.Services, svc)
		}
	}
	if len(errs) > 0 {
		return Desired{}, errors.Join(errs...)
	}
	sort.Slice(d.Services, func(i, j int) bool { return d.Services[i].Name < d.Services[j].Name })
	if sameNode {
		if err := checkBinds(d); err != nil {
			return Desired{}, err
		}
	}
	return d, nil
}

func buildService(c *selector.Cluster, def *selector.Service, records []selector.Record) (Service, error) {
	picks, err := def.Evaluate(records)
	if err != nil {
		return Service{}, err
	}
	svc := Service{
		Name: def.FullName(), Cluster: c.Name, Service: def.Name, IP: def.IP, Port: def.Port,
		Maxconn: def.Maxconn, Balance: def.Balance, HTTPCheck: def.HTTPCheck, CheckURI: def.CheckURI,
		CheckCode: def.CheckCode, Options: def.Options,
		Servers: make([]Server, 0, len(records)),
	}
	index := make(map[string]int, len(records))
	for i, r := range records {
		index[r["inventory_hostname"].(string)] = i
	}
	in := make(map[string]bool, len(picks))
	for _, p := range picks {
		slot := Active
		if p.Backup {
			slot = Backup
		}
		out, kept := drainedIn(&svc, p.Record)
		if out {
			continue // out, below
		}
		host := p.Record["inventory_hostname"].(string)
		sv := server(c.Name, def, p.Record, slot, index[host])
		sv.DrainKept = kept
		svc.Servers = append(svc.Servers, sv)
		in[host] = true
	}
	for i, r := range records {
		if !in[r["inventory_hostname"].(string)] {
			sv := server(c.Name, def, r, Out, i)
			sv.Drained, sv.DrainKept = drainedIn(&svc, r)
			svc.Servers = append(svc.Servers, sv)
		}
	}
	return svc, nil
}

// DrainVar is the instance variable `pgsvc drain` sets (an override the
// selectors see too): true takes the instance out of every service.
const DrainVar = "pgsvc_drain"

// DrainAlways is the DrainVar value `pgsvc drain --force` writes: out of
// every service even while the instance is the primary.
const DrainAlways = "always"

// drainedIn reports whether a drained instance leaves svc (out), and
// whether it was asked to but stays (kept): a drained instance that is
// the primary stays in the services that admit only the primary (they
// would have no server; a drained replica that Patroni promotes), unless
// drained with --force.
func drainedIn(svc *Service, r selector.Record) (out, kept bool) {
	always := r[DrainVar] == DrainAlways
	if !always && !ansibleBool(r[DrainVar]) {
		return false, false
	}
	if !always && svc.ChecksPrimary() && r["pg_role"] == "primary" {
		return false, true
	}
	return true, false
}

func server(cluster string, def *selector.Service, r selector.Record, slot Slot, member int) Server {
	role, _ := r["pg_role"].(string)
	return Server{
		Name:      selector.InstanceName(cluster, selector.Seq(r)),
		Host:      r["inventory_hostname"].(string),
		Port:      def.ServerPort(r),
		CheckPort: def.HealthPort(r),
		CheckSSL:  ansibleBool(r["patroni_ssl_enabled"]),
		Weight:    serverWeight(def, r),
		Slot:      slot,
		Role:      role,
		Member:    member,
	}
}

// intVar reads an integer variable as Pigsty's templates print it: a whole
// number or a string holding one; def when unset or anything else.
func intVar(r selector.Record, key string, def int) int {
	if n, ok := selector.TemplateInt(r[key]); ok {
		return n
	}
	return def
}

// serverWeight is the weight HAProxy gives the server Pigsty renders. v2+
// always writes `weight {{ pg_weight|default(100) }}`. v1 writes `weight N`
// only when pg_weight is a number, so otherwise (unset, or a quoted string)
// the service's default-server options decide: their last `weight N`, or
// HAProxy's default 1 when they have none.
func serverWeight(def *selector.Service, r selector.Record) int {
	if def.Schema != 1 {
		return intVar(r, "pg_weight", 100)
	}
	if _, quoted := r["pg_weight"].(string); !quoted {
		if n, ok := selector.TemplateInt(r["pg_weight"]); ok {
			return n
		}
	}
	return optionsWeight(def.Options)
}

func optionsWeight(options string) int {
	w := 1
	f := strings.Fields(options)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "weight" {
			if n, err := strconv.Atoi(f[i+1]); err == nil {
				w = n
			}
		}
	}
	return w
}

// ansibleBool is Ansible's `|bool` (ansible-core's to_bool filter), which
// Pigsty's template applies to patroni_ssl_enabled: true for boolean true,
// the strings yes, on, 1 and true in any case, and the number 1; false for
// anything else. Not "y": that is module arguments' list (BOOLEANS_TRUE),
// not the filter's, in every ansible-core from 2.14 to 2.18.
func ansibleBool(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		switch strings.ToLower(t) {
		case "yes", "on", "1", "true":
			return true
		}
	case float64:
		return t == 1
	case int64:
		return t == 1
	}
	return false
}

// checkBinds rejects two services of one HAProxy that would bind the same
// address and port.
func checkBinds(d Desired) error {
	if c := d.BindConflict(); c != "" {
		return &selector.InputError{Msg: c + " on this HAProxy"}
	}
	return nil
}

// BindConflict names the first two services that would bind the same port
// on one HAProxy ("*" overlaps every address), "" when there are none.
func (d *Desired) BindConflict() string {
	for i, a := range d.Services {
		for _, b := range d.Services[i+1:] {
			if a.Port == b.Port && (a.IP == b.IP || a.IP == "*" || b.IP == "*") {
				return fmt.Sprintf("services %s (%s) and %s (%s) bind the same port", a.Name, a.Bind(), b.Name, b.Bind())
			}
		}
	}
	return ""
}
