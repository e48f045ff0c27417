package selector

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pgsvc/pgsvc/selector/jmes"
)

// DestKind says where a service's servers send traffic.
type DestKind int

// Destinations of a service, as Pigsty's `dest` (v2) or `dst_port` (v1).
const (
	DestPgbouncer DestKind = iota // pgbouncer_port|6432
	DestPostgres                  // pg_port|5432
	DestPort                      // a fixed port number
)

// Dest is a resolved destination: `default` has already been replaced by
// pg_default_service_dest.
type Dest struct {
	Kind DestKind
	Port int // DestPort only
}

func (d Dest) String() string {
	switch d.Kind {
	case DestPgbouncer:
		return "pgbouncer"
	case DestPostgres:
		return "postgres"
	default:
		return strconv.Itoa(d.Port)
	}
}

// CheckPortKind says which port HAProxy's health check uses.
type CheckPortKind int

// Health-check port choices. v2 always uses Patroni; v1 could choose.
const (
	CheckPatroni  CheckPortKind = iota // patroni_port|8008
	CheckExporter                      // pg_exporter_port|9630 (v1)
	CheckFixed                         // a fixed port (v1 numeric check_port)
	CheckNone                          // no health check at all (v1 check_port: none)
)

// CheckPort is where servers are health-checked.
type CheckPort struct {
	Kind CheckPortKind
	Port int // CheckFixed only
}

// Service is one normalized service definition of one cluster (v1 and v2
// schemas both end up here).
type Service struct {
	Cluster   string
	Name      string
	Schema    int // 1 or 2: which Pigsty schema the definition used
	Line      int // inventory line of the definition (0: a built-in default)
	IP        string
	Port      int
	Selector  *Expr
	Backup    *Expr // nil when the service has no backup selector
	Dest      Dest
	HTTPCheck bool // false: plain TCP checks (v1 check_method other than http)
	CheckURI  string
	CheckCode int
	CheckPort CheckPort
	Maxconn   int
	Balance   string
	Options   string // default-server options

	at string // "file:line" of the definition, for errors found at evaluation
}

// FullName is the listen section and file name: <cluster>-<name>.
func (s *Service) FullName() string { return s.Cluster + "-" + s.Name }

// SeedServerOptions is Pigsty's seed default-server line (v1 to v3).
const SeedServerOptions = "inter 3s fastinter 1s downinter 5s rise 3 fall 3 on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100"

var v2Keys = map[string]bool{"name": true, "port": true, "ip": true, "selector": true, "backup": true,
	"dest": true, "check": true, "maxconn": true, "balance": true, "options": true}

var v1Keys = map[string]bool{"name": true, "src_ip": true, "src_port": true, "dst_port": true,
	"check_method": true, "check_port": true, "check_url": true, "check_code": true,
	"selector": true, "selector_backup": true, "haproxy": true}

// defaultServices is Pigsty's pg_default_services (identical since v2.0).
func defaultServices() []any {
	svc := func(name string, port float64, dest, check, sel, backup string) map[string]any {
		m := map[string]any{"name": name, "port": port, "dest": dest, "check": check, "selector": sel}
		if backup != "" {
			m["backup"] = backup
		}
		return m
	}
	return []any{
		svc("primary", 5433, "default", "/primary", "[]", ""),
		svc("replica", 5434, "default", "/read-only", "[]", "[? pg_role == `primary` || pg_role == `offline` ]"),
		svc("default", 5436, "postgres", "/primary", "[]", ""),
		svc("offline", 5438, "postgres", "/replica", "[? pg_role == `offline` || pg_offline_query ]", "[? pg_role == `replica` && !pg_offline_query]"),
	}
}

// serviceDefs collects the raw service list of a cluster from the host whose
// variables configure it, and tells which schema the cluster uses. Errors
// start with "line N: " when the line is known.
func serviceDefs(cfg *Host) (defs []rawService, schema int, err error) {
	list := func(key string) ([]rawService, error) {
		v, ok := cfg.Vars[key]
		if !ok || v == nil {
			return nil, nil
		}
		items, ok := v.([]any)
		if !ok {
			return nil, inputErrorf("line %d: %s must be a list of services, got %s", cfg.Line(key), key, describe(v))
		}
		out := make([]rawService, 0, len(items))
		for i, it := range items {
			line := cfg.ItemLine(key, i)
			if line == 0 {
				line = cfg.Line(key)
			}
			m, ok := mapping(it)
			if !ok {
				return nil, inputErrorf("line %d: %s[%d] must be a mapping, got %s", line, key, i, describe(it))
			}
			out = append(out, rawService{m: m, node: cfg.item(key, i), list: key, index: i, line: line})
		}
		return out, nil
	}
	services, err := list("pg_services")
	if err != nil {
		return nil, 0, err
	}
	extra, err := list("pg_services_extra")
	if err != nil {
		return nil, 0, err
	}
	// v1 (Pigsty up to 1.5) when the entries are v1 or the v1 per-cluster
	// hook holds services; an empty pg_services_extra: [] left over in a
	// v2+ inventory's all.vars does not make it v1.
	if len(extra) > 0 || usesV1(services) {
		return append(services, extra...), 1, nil
	}
	defaults, err := list("pg_default_services")
	if err != nil {
		return nil, 0, err
	}
	if _, set := cfg.Vars["pg_default_services"]; !set {
		for i, d := range defaultServices() {
			defaults = append(defaults, rawService{m: d.(map[string]any), list: "pg_default_services (built-in)", index: i})
		}
	}
	return append(defaults, services...), 2, nil
}

type rawService struct {
	m     map[string]any
	node  *yaml.Node // the entry in the inventory, nil for a built-in default
	list  string
	index int
	line  int
}

func usesV1(defs []rawService) bool {
	for _, d := range defs {
		for k := range d.m {
			if v1Keys[k] && !v2Keys[k] {
				return true
			}
		}
	}
	return false
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(t)
	case float64:
		return pyFloat(t) // as Ansible prints it: 1.0 is not 1
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case bool:
		return strconv.FormatBool(t)
	case []any:
		return "a list"
	case map[string]any, *jmes.Object:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", t)
	}
}

// serviceBuilder normalizes one raw definition for one cluster.
type serviceBuilder struct {
	cluster string
	cfg     *Host // the host whose variables configure the cluster
	exprs   *exprCache
}

// cfgAt locates a cluster-level variable of the configuring host.
func (b *serviceBuilder) cfgAt(key string) string {
	if line := b.cfg.Line(key); line > 0 {
		return fmt.Sprintf("line %d: cluster %s", line, b.cluster)
	}
	return "cluster " + b.cluster
}

func (b *serviceBuilder) where(r rawService, name string) string {
	loc := fmt.Sprintf("cluster %s service %s", b.cluster, name)
	if r.line > 0 {
		return fmt.Sprintf("line %d: %s", r.line, loc)
	}
	return loc
}

func (b *serviceBuilder) build(r rawService, schema int) (*Service, error) {
	name, _ := r.m["name"].(string)
	if name == "" {
		return nil, inputErrorf("%s: service without a name", b.where(r, fmt.Sprintf("%s[%d]", r.list, r.index)))
	}
	at := b.where(r, name)
	allowed := v2Keys
	if schema == 1 {
		allowed = v1Keys
	}
	var unknown []string
	for k := range r.m {
		if !allowed[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, inputErrorf("%s: unknown key %q in a v%d service definition", at, unknown[0], schema)
	}
	s := &Service{Cluster: b.cluster, Name: name, Schema: schema, Line: r.line, HTTPCheck: true, CheckURI: "/", CheckCode: 200}
	var err error
	if schema == 1 {
		err = b.fillV1(s, r, at)
	} else {
		err = b.fillV2(s, r, at)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (b *serviceBuilder) fillV2(s *Service, r rawService, at string) error {
	m := r.m
	var err error
	if s.Port, err = requiredPort(m, "port", b.cfg.spellingIn(r.node, "port"), at); err != nil {
		return err
	}
	if s.IP, err = optString(m, "ip", "*", at); err != nil {
		return err
	}
	if err = b.selectors(s, m, "selector", "backup", at); err != nil {
		return err
	}
	destVal, ok := m["dest"]
	destAt, destSpelled := at, b.cfg.spellingIn(r.node, "dest")
	if !ok || destVal == "default" {
		// Absent: the role default, pgbouncer. Null (`~`) is a value:
		// the template's |default does not replace it.
		if destVal, ok = b.cfg.Vars["pg_default_service_dest"]; !ok {
			destVal = "pgbouncer"
		}
		destAt += " (pg_default_service_dest)"
		if line := b.cfg.Line("pg_default_service_dest"); r.line == 0 && line > 0 {
			destAt = fmt.Sprintf("line %d: %s", line, destAt) // a built-in service: the variable's line
		}
		destSpelled = b.cfg.spelling("pg_default_service_dest")
	}
	if s.Dest, err = parseDest("dest", destVal, destSpelled, destAt); err != nil {
		return err
	}
	if s.CheckURI, err = optString(m, "check", "/", at); err != nil {
		return err
	}
	if s.Maxconn, err = optInt(m, "maxconn", 5000, b.cfg.spellingIn(r.node, "maxconn"), maxconnUse, at); err != nil {
		return err
	}
	if s.Balance, err = optString(m, "balance", "roundrobin", at); err != nil {
		return err
	}
	def, err := b.rtoOptions()
	if err != nil {
		return err
	}
	s.Options, err = optString(m, "options", def, at)
	return err
}

func (b *serviceBuilder) fillV1(s *Service, r rawService, at string) error {
	m := r.m
	var err error
	if s.Port, err = requiredPort(m, "src_port", b.cfg.spellingIn(r.node, "src_port"), at); err != nil {
		return err
	}
	if s.IP, err = optString(m, "src_ip", "*", at); err != nil {
		return err
	}
	if s.IP == "vip" {
		vip, ok := b.cfg.Vars["vip_address"].(string)
		if !ok || vip == "" {
			return inputErrorf("%s: src_ip is vip but the cluster has no vip_address", at)
		}
		s.IP = vip
	}
	if err = b.selectors(s, m, "selector", "selector_backup", at); err != nil {
		return err
	}
	destVal, ok := m["dst_port"]
	if !ok {
		destVal = "postgres"
	}
	if s.Dest, err = parseDest("dst_port", destVal, b.cfg.spellingIn(r.node, "dst_port"), at); err != nil {
		return err
	}
	method, err := optString(m, "check_method", "http", at)
	if err != nil {
		return err
	}
	s.HTTPCheck = method == "http"
	if s.CheckURI, err = optString(m, "check_url", "/", at); err != nil {
		return err
	}
	if s.CheckCode, err = optInt(m, "check_code", 200, b.cfg.spellingIn(r.node, "check_code"), statusUse, at); err != nil {
		return err
	}
	if s.CheckPort, err = parseCheckPort(m["check_port"], at); err != nil {
		return err
	}
	var node *yaml.Node
	if r.node != nil && r.node.Kind == yaml.MappingNode {
		node = lookup(r.node, "haproxy")
	}
	return b.fillV1HAProxy(s, m["haproxy"], node, at)
}

func (b *serviceBuilder) fillV1HAProxy(s *Service, v any, node *yaml.Node, at string) error {
	hm := map[string]any{}
	if v != nil {
		var ok bool
		if hm, ok = mapping(v); !ok {
			return inputErrorf("%s: haproxy must be a mapping, got %s", at, describe(v))
		}
	}
	for k := range hm {
		if k != "maxconn" && k != "balance" && k != "default_server_options" {
			return inputErrorf("%s: unknown key \"haproxy.%s\" in a v1 service definition", at, k)
		}
	}
	var err error
	if s.Maxconn, err = optInt(hm, "maxconn", 3000, b.cfg.spellingIn(node, "maxconn"), maxconnUse, at+" haproxy"); err != nil {
		return err
	}
	if s.Balance, err = optString(hm, "balance", "roundrobin", at+" haproxy"); err != nil {
		return err
	}
	s.Options, err = optString(hm, "default_server_options", SeedServerOptions, at+" haproxy")
	return err
}

func (b *serviceBuilder) selectors(s *Service, m map[string]any, selKey, backupKey, at string) error {
	src, ok := m[selKey].(string)
	if !ok || strings.TrimSpace(src) == "" {
		if v, present := m[selKey]; present {
			return inputErrorf("%s: %s must be a JMESPath string, got %s", at, selKey, describe(v))
		}
		return inputErrorf("%s: missing %s", at, selKey)
	}
	var err error
	if s.Selector, err = b.exprs.compile(src, at+" "+selKey); err != nil {
		return err
	}
	raw, ok := m[backupKey]
	if !ok || raw == nil {
		return nil
	}
	bsrc, ok := raw.(string)
	if !ok {
		return inputErrorf("%s: %s must be a JMESPath string, got %s", at, backupKey, describe(raw))
	}
	s.Backup, err = b.exprs.compile(bsrc, at+" "+backupKey)
	return err
}

// parseDest reads a service's destination (key dest, or v1's dst_port;
// spelled as in requiredPort). Pigsty's template sends traffic to the
// number when the value is one, to pg_port or pgbouncer_port for those
// words, and to 5432 for anything else.
func parseDest(key string, v any, spelled, at string) (Dest, error) {
	switch t := v.(type) {
	case nil:
		// Pigsty's template: null is no number and neither word, so the
		// server line falls through to its literal 5432.
		return Dest{Kind: DestPort, Port: 5432}, nil
	case int64:
		if p, ok := portNumber(float64(t)); ok {
			return Dest{Kind: DestPort, Port: p}, nil
		}
		return Dest{}, inputErrorf("%s: %s", at, outOfRange(key, v, clampInt(t), spelled, "is neither postgres, pgbouncer, default nor a port number", serverPortUse))
	case float64:
		if p, ok := portNumber(t); ok {
			return Dest{Kind: DestPort, Port: p}, nil
		}
	case string:
		switch t {
		case "postgres":
			return Dest{Kind: DestPostgres}, nil
		case "pgbouncer":
			return Dest{Kind: DestPgbouncer}, nil
		}
		if n, err := strconv.Atoi(t); err == nil && strings.Trim(t, "0123456789") == "" {
			if p, ok := portNumber(float64(n)); ok {
				return Dest{Kind: DestPort, Port: p}, nil
			}
		}
		return Dest{}, inputErrorf("%s: %s %q is neither postgres, pgbouncer, default nor a port number: Pigsty's template would send traffic to port 5432 (text other than postgres and pgbouncer falls through to it)", at, key, t)
	}
	return Dest{}, inputErrorf("%s: %s %s is neither postgres, pgbouncer, default nor a port number", at, key, describe(v))
}

// clampInt is n as an int for an error's arithmetic, bounded.
func clampInt(n int64) int {
	return int(max(min(n, math.MaxInt32), math.MinInt32))
}

func parseCheckPort(v any, at string) (CheckPort, error) {
	switch t := v.(type) {
	case nil:
		return CheckPort{Kind: CheckPatroni}, nil
	case int64:
		if p, ok := portNumber(float64(t)); ok {
			return CheckPort{Kind: CheckFixed, Port: p}, nil
		}
	case float64:
		if p, ok := portNumber(t); ok {
			return CheckPort{Kind: CheckFixed, Port: p}, nil
		}
	case string:
		switch t {
		case "patroni":
			return CheckPort{Kind: CheckPatroni}, nil
		case "pg_exporter":
			return CheckPort{Kind: CheckExporter}, nil
		case "none":
			return CheckPort{Kind: CheckNone}, nil
		}
	}
	return CheckPort{}, inputErrorf("%s: check_port %s is neither patroni, pg_exporter, none nor a port number", at, describe(v))
}

func portNumber(f float64) (int, bool) {
	if f != float64(int(f)) || f < 1 || f > 65535 {
		return 0, false
	}
	return int(f), true
}

// requiredPort reads the bind port at key; spelled is its text when YAML
// 1.1 read that as another number (`1111:40`), for the error.
func requiredPort(m map[string]any, key, spelled, at string) (int, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return 0, inputErrorf("%s: missing %s", at, key)
	}
	n, isInt := TemplateInt(v)
	if !isInt {
		return 0, inputErrorf("%s: %s", at, notTemplateInt(key, v, bindUse))
	}
	p, ok := portNumber(float64(n))
	if !ok {
		return 0, inputErrorf("%s: %s", at, outOfRange(key, v, n, spelled, "is not a port number (1-65535)", bindUse))
	}
	return p, nil
}

func optString(m map[string]any, key, def, at string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	switch t := v.(type) {
	case string:
		return t, nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case float64:
		// YAML may type a bare address or uri as a number: printed as
		// Pigsty's template prints it.
		return pyFloat(t), nil
	}
	return "", inputErrorf("%s: %s must be a string, got %s", at, key, describe(v))
}

// optInt reads the non-negative integer at key, def when unset; u is
// where Pigsty prints it, spelled as in requiredPort.
func optInt(m map[string]any, key string, def int, spelled string, u use, at string) (int, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	n, isInt := TemplateInt(v)
	if !isInt {
		return 0, inputErrorf("%s: %s", at, notTemplateInt(key, v, u))
	}
	if n < 0 {
		return 0, inputErrorf("%s: %s", at, outOfRange(key, v, n, spelled, "is not a non-negative integer", u))
	}
	return n, nil
}

// ServerPort is the port a member's server sends traffic to, by dest.
func (s *Service) ServerPort(r Record) int {
	switch s.Dest.Kind {
	case DestPostgres:
		return recordPort(r, "pg_port", 5432)
	case DestPgbouncer:
		return recordPort(r, "pgbouncer_port", 6432)
	default:
		return s.Dest.Port
	}
}

// HealthPort is the port of a member's health check, 0 for no check.
func (s *Service) HealthPort(r Record) int {
	switch s.CheckPort.Kind {
	case CheckExporter:
		return recordPort(r, "pg_exporter_port", 9630)
	case CheckFixed:
		return s.CheckPort.Port
	case CheckNone:
		return 0
	default:
		return recordPort(r, "patroni_port", 8008)
	}
}

func recordPort(r Record, key string, def int) int {
	if n, ok := TemplateInt(r[key]); ok && n > 0 {
		return n
	}
	return def
}
