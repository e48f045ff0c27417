// Package dcs understands the keys pgsvc reads from etcd: Patroni's cluster
// keys (<namespace><scope>/leader, .../members/<name>, .../history) and
// pgsvc's own per-instance overrides. It is pure: callers bring the key/value pairs.
package dcs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgsvc/pgsvc/selector"
)

// DefaultNamespace is Pigsty's pg_namespace.
const DefaultNamespace = "/pg/"

// DefaultOverridePrefix is where `pgsvc set` stores per-instance variables.
const DefaultOverridePrefix = "/pgsvc/overrides/"

// DefaultStopPrefix is where `pgsvc before-stop` (Patroni's before_stop
// hook) says, per cluster, that the leader is about to shut PostgreSQL
// down for a requested switchover.
const DefaultStopPrefix = "/pgsvc/stopping/"

// NormalizePrefix turns "/pg", "pg/" or "//pg//" into "/pg/", as Patroni does.
func NormalizePrefix(p string) string {
	parts := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	if len(parts) == 0 {
		return "/"
	}
	return "/" + strings.Join(parts, "/") + "/"
}

// Cluster is what etcd holds about one Patroni cluster.
type Cluster struct {
	Leader string // value of the leader key, "" when the key is absent
	// LeaderTerm is the leader key's create revision. Patroni creates the
	// key on its node's lease when it takes the lock and deletes it when it
	// gives it up (or the lease expires): a new create revision is a new
	// leader term, even for the same member. 0 when unknown.
	LeaderTerm int64
	Members    map[string]selector.Member
	// MemberRevs holds each member key's mod revision (0 when unknown).
	MemberRevs map[string]int64
	// Config is the cluster's dynamic configuration; nil while the config
	// key is absent or malformed (then nothing is known about it).
	Config *Config
	// Failover is a requested switchover or failover (Patroni's failover
	// key naming a leader or a member); nil when the key is absent, empty
	// ({}, as the new leader leaves it) or malformed.
	Failover *Failover
	// Stopping is the before_stop hook's word that the leader is about to
	// shut PostgreSQL down for a switchover; nil when the key is absent or
	// malformed.
	Stopping *Stop
	// Promoted is the member the last history entry names as the new
	// leader. The history key has no lease, so it still names the last
	// primary when the leader and member keys have expired and pgsvc has
	// just started without a memory of its own.
	Promoted string
}

// State is the live view read from etcd: Patroni clusters by scope and the
// operators' overrides by instance.
type State struct {
	Revision  int64
	Clusters  map[string]*Cluster
	Overrides selector.Overrides
}

// Config is what pgsvc reads of Patroni's config key.
type Config struct {
	// Standby: the cluster replicates from another one (standby_cluster is
	// set); its leader is a standby_leader and never accepts writes.
	Standby bool
}

// Failover is a switchover or failover Patroni was asked for: patronictl
// (or POST /switchover) writes it before the leader demotes, and the new
// leader clears it to {}.
type Failover struct {
	Leader      string    // the leader to step down ("" for a failover to Member)
	Member      string    // the candidate ("" lets Patroni choose)
	ScheduledAt time.Time // zero: at once
	// Revision is the key's mod revision: each request is a new write.
	Revision int64
}

// Stop is what `pgsvc before-stop` writes when Patroni, demoting its
// leader for a requested switchover, runs the before_stop hook: after its
// checkpoint, right before PostgreSQL stops accepting connections.
type Stop struct {
	Leader  string `json:"leader"`  // the member about to stop
	Request int64  `json:"request"` // the failover key's mod revision it stops for
}

// ParseStop decodes a before_stop key.
func ParseStop(value []byte) (*Stop, error) {
	var st Stop
	if err := json.Unmarshal(value, &st); err != nil {
		return nil, fmt.Errorf("not pgsvc before-stop JSON (an object with leader, request): %s", jsonError(err))
	}
	if st.Leader == "" || st.Request <= 0 {
		return nil, fmt.Errorf("before-stop value %s: want a leader and a positive request revision", strings.TrimSpace(string(value)))
	}
	return &st, nil
}

// Due reports whether the request asks for a switchover now (a scheduled
// one once its time has come).
func (f *Failover) Due(now time.Time) bool {
	return f != nil && (f.ScheduledAt.IsZero() || !now.Before(f.ScheduledAt))
}

// ParseFailover decodes Patroni's failover key: nil for {} or a value
// naming neither a leader nor a member.
func ParseFailover(value []byte) (*Failover, error) {
	var raw struct {
		Leader      string `json:"leader"`
		Member      string `json:"member"`
		ScheduledAt string `json:"scheduled_at"`
	}
	if err := json.Unmarshal(value, &raw); err != nil {
		return nil, fmt.Errorf("not Patroni failover JSON (an object with leader, member, scheduled_at): %s", jsonError(err))
	}
	if raw.Leader == "" && raw.Member == "" {
		return nil, nil
	}
	f := &Failover{Leader: raw.Leader, Member: raw.Member}
	if raw.ScheduledAt != "" {
		at, err := time.Parse(time.RFC3339Nano, raw.ScheduledAt)
		if err != nil {
			return nil, fmt.Errorf("failover scheduled_at %q: not an ISO 8601 time with a zone: %v", raw.ScheduledAt, err)
		}
		f.ScheduledAt = at.UTC()
	}
	return f, nil
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Clusters: map[string]*Cluster{}, Overrides: selector.Overrides{}}
}

// Layout names the prefixes pgsvc reads.
type Layout struct {
	Namespace      string // Patroni namespace, e.g. "/pg/"
	OverridePrefix string // e.g. "/pgsvc/overrides/"
	StopPrefix     string // e.g. "/pgsvc/stopping/"; "" reads none
}

// DefaultLayout is Pigsty's namespace and pgsvc's default prefixes.
func DefaultLayout() Layout {
	return Layout{Namespace: DefaultNamespace, OverridePrefix: DefaultOverridePrefix, StopPrefix: DefaultStopPrefix}
}

// StopScope is the cluster a key under the before_stop prefix is for.
func (l Layout) StopScope(key string) (string, bool) {
	if l.StopPrefix == "" {
		return "", false
	}
	scope, ok := strings.CutPrefix(key, l.StopPrefix)
	return scope, ok && scope != "" && !strings.Contains(scope, "/")
}

// Put records a key's value without its revisions (see PutKV).
func (s *State) Put(l Layout, key string, value []byte) error {
	return s.PutKV(l, KV{Key: key, Value: value})
}

// PutKV records a key's value. Keys outside pgsvc's prefixes and Patroni keys
// pgsvc does not use are ignored. A malformed value is an error naming the
// key, and the key then counts as absent: its previous value is forgotten,
// so the state is the same whether it was listed or watched (a list skips
// a malformed value; a watch must not keep the one before it).
func (s *State) PutKV(l Layout, kv KV) error {
	key, value := kv.Key, kv.Value
	if inst, ok := strings.CutPrefix(key, l.OverridePrefix); ok {
		vars, err := ParseOverride(value)
		if err != nil {
			s.Delete(l, key)
			return fmt.Errorf("override %s: %w", key, err)
		}
		s.Overrides[inst] = vars
		return nil
	}
	if scope, ok := l.StopScope(key); ok {
		st, err := ParseStop(value)
		if err != nil {
			s.Delete(l, key)
			return fmt.Errorf("before-stop %s: %w", key, err)
		}
		s.cluster(scope).Stopping = st
		return nil
	}
	scope, name, kind := l.split(key)
	var err error
	switch kind {
	case keyLeader:
		c := s.cluster(scope)
		c.Leader, c.LeaderTerm = strings.TrimSpace(string(value)), kv.CreateRevision
	case keyMember:
		var m selector.Member
		if m, err = ParseMember(value); err != nil {
			err = fmt.Errorf("patroni member %s: %w", key, err)
			break
		}
		c := s.cluster(scope)
		c.Members[name], c.MemberRevs[name] = m, kv.ModRevision
	case keyHistory:
		var promoted string
		if promoted, err = ParseHistory(value); err != nil {
			err = fmt.Errorf("patroni history %s: %w", key, err)
			break
		}
		s.cluster(scope).Promoted = promoted
	case keyConfig:
		var cfg *Config
		if cfg, err = ParseConfig(value); err != nil {
			err = fmt.Errorf("patroni config %s: %w", key, err)
			break
		}
		s.cluster(scope).Config = cfg
	case keyFailover:
		var f *Failover
		if f, err = ParseFailover(value); err != nil {
			err = fmt.Errorf("patroni failover %s: %w", key, err)
			break
		}
		if f != nil {
			f.Revision = kv.ModRevision
		}
		s.cluster(scope).Failover = f
	}
	if err != nil {
		s.Delete(l, key)
	}
	return err
}

// ParseConfig decodes what pgsvc needs of Patroni's config key (JSON).
func ParseConfig(value []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(value, &raw); err != nil {
		return nil, fmt.Errorf("not Patroni config JSON (an object): %s", jsonError(err))
	}
	if raw == nil {
		return nil, fmt.Errorf("not Patroni config JSON (an object): null")
	}
	// As Patroni's is_standby_cluster: a standby_cluster section naming a
	// host, a port or a restore_command.
	var sc map[string]any
	if b, ok := raw["standby_cluster"]; ok {
		if err := json.Unmarshal(b, &sc); err != nil {
			return nil, fmt.Errorf("standby_cluster is not an object: %s", jsonError(err))
		}
	}
	standby := false
	for _, k := range []string{"host", "port", "restore_command"} {
		if v, ok := sc[k]; ok && v != nil && v != "" && v != false {
			standby = true
		}
	}
	return &Config{Standby: standby}, nil
}

// Delete forgets a key. A deleted member key only means Patroni's lease
// expired; the caller decides what that does to routing (nothing, by design).
func (s *State) Delete(l Layout, key string) {
	if inst, ok := strings.CutPrefix(key, l.OverridePrefix); ok {
		delete(s.Overrides, inst)
		return
	}
	if scope, ok := l.StopScope(key); ok {
		if c := s.Clusters[scope]; c != nil {
			c.Stopping = nil
		}
		return
	}
	scope, name, kind := l.split(key)
	c := s.Clusters[scope]
	if c == nil {
		return
	}
	switch kind {
	case keyLeader:
		c.Leader, c.LeaderTerm = "", 0
	case keyMember:
		delete(c.Members, name)
		delete(c.MemberRevs, name)
	case keyHistory:
		c.Promoted = ""
	case keyConfig:
		c.Config = nil
	case keyFailover:
		c.Failover = nil
	}
}

func (s *State) cluster(scope string) *Cluster {
	c := s.Clusters[scope]
	if c == nil {
		c = &Cluster{Members: map[string]selector.Member{}, MemberRevs: map[string]int64{}}
		s.Clusters[scope] = c
	}
	return c
}

type keyKind int

const (
	keyOther keyKind = iota
	keyLeader
	keyMember
	keyHistory
	keyConfig
	keyFailover
)

func (l Layout) split(key string) (scope, member string, kind keyKind) {
	rest, ok := strings.CutPrefix(key, l.Namespace)
	if !ok {
		return "", "", keyOther
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && parts[1] == "leader":
		return parts[0], "", keyLeader
	case len(parts) == 2 && parts[1] == "history":
		return parts[0], "", keyHistory
	case len(parts) == 2 && parts[1] == "config":
		return parts[0], "", keyConfig
	case len(parts) == 2 && parts[1] == "failover":
		return parts[0], "", keyFailover
	case len(parts) == 3 && parts[1] == "members" && parts[2] != "":
		return parts[0], parts[2], keyMember
	}
	return "", "", keyOther
}

// ParseMember decodes a Patroni member value (JSON; very old Patroni wrote a
// bare conn_url string, which carries no role).
func ParseMember(value []byte) (selector.Member, error) {
	v := strings.TrimSpace(string(value))
	if strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://") {
		return selector.Member{}, nil
	}
	var raw struct {
		Role   *string        `json:"role"`
		State  string         `json:"state"`
		Tags   map[string]any `json:"tags"`
		APIURL string         `json:"api_url"`
	}
	if err := json.Unmarshal(value, &raw); err != nil {
		return selector.Member{}, fmt.Errorf("not Patroni member JSON: %s", jsonError(err))
	}
	if raw.Role == nil {
		return selector.Member{}, fmt.Errorf("member JSON has no role")
	}
	return selector.Member{Role: *raw.Role, State: raw.State, Tags: raw.Tags, APIURL: raw.APIURL}, nil
}

// Live resolves the state into the selector's view, each cluster's leader
// by RoutingLeader.
func (s *State) Live(lastLeader map[string]string) map[string]selector.ClusterLive {
	out := make(map[string]selector.ClusterLive, len(s.Clusters))
	for scope, c := range s.Clusters {
		out[scope] = selector.ClusterLive{Leader: RoutingLeader(scope, c, lastLeader), Members: c.Members}
	}
	return out
}

// RoutingLeader names the member that routes as primary: ResolveLeader's
// answer, recorded in lastLeader (nil: no memory); failing that (failsafe,
// pause, a switchover in flight) the last known leader in lastLeader; and
// without a memory (pgsvc just started, or a one-shot command) the
// history's last promoted member. "" when nothing is known.
func RoutingLeader(scope string, c *Cluster, lastLeader map[string]string) string {
	leader := ResolveLeader(c)
	switch {
	case leader != "":
		if lastLeader != nil {
			lastLeader[scope] = leader
		}
	case lastLeader[scope] != "":
		leader = lastLeader[scope]
	default:
		leader = c.Promoted
	}
	return leader
}

// ResolveLeader names the member that routes as primary: the leader key,
// else the one member whose role says primary (master, primary,
// standby_leader), else the one being promoted; "" when unknown or ambiguous.
func ResolveLeader(c *Cluster) string {
	if c.Leader != "" {
		return c.Leader
	}
	var primaries, promoted []string
	for name, m := range c.Members {
		if m.State != "running" {
			continue // a stopped or crashed member claims nothing
		}
		switch m.Role {
		case "master", "primary", "standby_leader":
			primaries = append(primaries, name)
		case "promoted":
			promoted = append(promoted, name)
		}
	}
	if len(primaries) == 1 {
		return primaries[0]
	}
	if len(primaries) == 0 && len(promoted) == 1 {
		return promoted[0]
	}
	return ""
}

// ParseHistory returns the new leader named by the last entry of Patroni's
// history key: a JSON list of [timeline, lsn, reason, timestamp, new_leader].
// Entries written before Patroni recorded the new leader give "".
func ParseHistory(value []byte) (string, error) {
	var entries [][]json.RawMessage
	if err := json.Unmarshal(value, &entries); err != nil {
		return "", fmt.Errorf("not Patroni history JSON (a list of [timeline, lsn, reason, timestamp, new_leader]): %s", jsonError(err))
	}
	if len(entries) == 0 {
		return "", nil
	}
	last := entries[len(entries)-1]
	if len(last) < 5 {
		return "", nil
	}
	var leader string
	if err := json.Unmarshal(last[4], &leader); err != nil {
		return "", fmt.Errorf("history entry %d: new_leader is %s, not a member name", len(entries), last[4])
	}
	return leader, nil
}

// Clone returns a deep copy of the cluster (its maps are not shared).
func (c *Cluster) Clone() *Cluster {
	out := *c
	out.Members = make(map[string]selector.Member, len(c.Members))
	for k, v := range c.Members {
		out.Members[k] = v
	}
	out.MemberRevs = make(map[string]int64, len(c.MemberRevs))
	for k, v := range c.MemberRevs {
		out.MemberRevs[k] = v
	}
	if c.Config != nil {
		cfg := *c.Config
		out.Config = &cfg
	}
	if c.Failover != nil {
		f := *c.Failover
		out.Failover = &f
	}
	return &out
}

// IsPrimaryRole reports whether a Patroni role means "serving as primary".
func IsPrimaryRole(role string) bool {
	return role == "master" || role == "primary" || role == "standby_leader"
}

// Scopes returns the cluster scopes present, sorted.
func (s *State) Scopes() []string {
	out := make([]string, 0, len(s.Clusters))
	for k := range s.Clusters {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
