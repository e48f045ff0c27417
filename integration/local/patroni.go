package local

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Patroni writes a cluster's keys into etcd the way Patroni 3.0.2 does,
// field for field as in fixtures/patroni (recorded from a real cluster):
// leader and member keys on the node's lease, member JSON in Patroni's
// field order. Sequences follow the recorded watch streams.
type Patroni struct {
	t       testing.TB
	Cli     *clientv3.Client
	Prefix  string // e.g. /pg/pg-test/
	Role    string // primary role name: master (3.x) or primary (4.x)
	addrs   map[string]string
	leases  map[string]clientv3.LeaseID
	history []any // entries of the history key, one per promotion
	// APIPorts are the members' REST API ports in their api_url (8008
	// when absent): a Member's CheckPort answers as Patroni's would.
	APIPorts map[string]int
}

// NewPatroni writes for scope under namespace; addrs maps member name to its address.
func NewPatroni(t testing.TB, cli *clientv3.Client, namespace, scope string, addrs map[string]string) *Patroni {
	return &Patroni{t: t, Cli: cli, Prefix: namespace + scope + "/", Role: "master", addrs: addrs, leases: map[string]clientv3.LeaseID{}}
}

type memberJSON struct {
	ConnURL      string `json:"conn_url"`
	APIURL       string `json:"api_url"`
	State        string `json:"state"`
	Role         string `json:"role"`
	Version      string `json:"version"`
	XlogLocation *int64 `json:"xlog_location,omitempty"`
	Timeline     *int   `json:"timeline,omitempty"`
}

func (p *Patroni) lease(name string) clientv3.LeaseID {
	if id, ok := p.leases[name]; ok {
		return id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := p.Cli.Grant(ctx, 30)
	if err != nil {
		p.t.Fatalf("patroni lease for %s: %v", name, err)
	}
	p.leases[name] = l.ID
	return l.ID
}

// MemberValue is the JSON Patroni 3.0.2 writes for a member.
func (p *Patroni) MemberValue(name, role, state string) string {
	addr := p.addrs[name]
	api := 8008
	if port, ok := p.APIPorts[name]; ok {
		api = port
	}
	m := memberJSON{ConnURL: fmt.Sprintf("postgres://%s:5432/postgres", addr), APIURL: fmt.Sprintf("http://%s:%d/patroni", addr, api),
		State: state, Role: role, Version: "3.0.2"}
	if state == "running" {
		x, tl := int64(67108960), 1
		m.XlogLocation, m.Timeline = &x, &tl
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Member writes members/<name>; it returns the etcd revision of the write.
func (p *Patroni) Member(name, role, state string) int64 {
	return p.put("members/"+name, p.MemberValue(name, role, state), p.lease(name))
}

// Leader writes the leader key (bare member name) on the member's lease.
func (p *Patroni) Leader(name string) int64 { return p.put("leader", name, p.lease(name)) }

// DeleteLeader releases the leader key, as a graceful demotion does.
func (p *Patroni) DeleteLeader() int64 { return p.del("leader") }

// DeleteMember removes a member key, as a lease expiry does.
func (p *Patroni) DeleteMember(name string) int64 { return p.del("members/" + name) }

// ExpireLease revokes a member's lease: its leader key (when it holds it)
// and its member key vanish in one etcd revision, exactly as when the node
// loses etcd and the lease's ttl runs out. The member gets a new lease on
// its next write, as Patroni does when etcd is back.
func (p *Patroni) ExpireLease(name string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, ok := p.leases[name]
	if !ok {
		p.t.Fatalf("patroni: %s has no lease", name)
	}
	r, err := p.Cli.Revoke(ctx, id)
	if err != nil {
		p.t.Fatalf("patroni revoke lease of %s: %v", name, err)
	}
	delete(p.leases, name)
	return r.Header.Revision
}

// Config writes the config key as Patroni's bootstrap does (the recorded
// fixtures' dynamic configuration); standby adds a standby_cluster section.
func (p *Patroni) Config(standby bool) int64 {
	v := `{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"failsafe_mode":true,"postgresql":{"use_pg_rewind":true,"use_slots":true}`
	if standby {
		v += `,"standby_cluster":{"host":"10.10.10.99","port":5432,"create_replica_methods":["basebackup"]}`
	}
	return p.put("config", v+"}", 0)
}

// Steady writes a running cluster led by leader (config key included).
func (p *Patroni) Steady(leader string, members ...string) int64 {
	rev := p.Config(false)
	for _, m := range members {
		role := "replica"
		if m == leader {
			role = p.Role
		}
		rev = p.Member(m, role, "running")
	}
	return max(rev, p.Leader(leader))
}

// Switchover replays the key writes of `patronictl switchover` in the order
// recorded in fixtures/patroni/p3-switchover-watch.jsonl: failover key,
// leader released, old leader demoted/stopping, new leader key, new leader
// promoted to master, old leader back as replica.
func (p *Patroni) Switchover(from, to string) int64 {
	p.put("failover", fmt.Sprintf(`{"leader":%q,"member":%q}`, from, to), 0)
	p.DeleteLeader()
	p.Member(from, "demoted", "stopping")
	p.Leader(to)
	p.put("failover", "{}", 0)
	p.Member(from, "demoted", "stopped")
	p.promoted(to)
	rev := p.Member(to, p.Role, "running")
	p.Member(from, "replica", "running")
	return rev
}

// RequestSwitchover writes the failover key as `patronictl switchover`
// does before the leader demotes (scheduledAt "" for at once).
func (p *Patroni) RequestSwitchover(from, to, scheduledAt string) int64 {
	v := fmt.Sprintf(`{"leader":%q,"member":%q}`, from, to)
	if scheduledAt != "" {
		v = fmt.Sprintf(`{"leader":%q,"member":%q,"scheduled_at":%q}`, from, to, scheduledAt)
	}
	return p.put("failover", v, 0)
}

// ClearFailover leaves the failover key as {} (Patroni's new leader does
// so, and so does an aborted request's leader).
func (p *Patroni) ClearFailover() int64 { return p.put("failover", "{}", 0) }

// promoted appends the history entry the new leader writes after its
// timeline changed: [timeline, lsn, reason, timestamp, new_leader].
func (p *Patroni) promoted(leader string) {
	tl := len(p.history) + 1
	p.history = append(p.history, []any{tl, 67109256 + tl*280, "no recovery target specified", time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"), leader})
	v, err := json.Marshal(p.history)
	if err != nil {
		p.t.Fatal(err)
	}
	p.put("history", string(v), 0)
}

func (p *Patroni) put(key, value string, lease clientv3.LeaseID) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	r, err := p.Cli.Put(ctx, p.Prefix+key, value, opts...)
	if err != nil {
		p.t.Fatalf("patroni put %s: %v", key, err)
	}
	return r.Header.Revision
}

func (p *Patroni) del(key string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := p.Cli.Delete(ctx, p.Prefix+key)
	if err != nil {
		p.t.Fatalf("patroni delete %s: %v", key, err)
	}
	return r.Header.Revision
}
