package reconcile

import (
	"fmt"
	"maps"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// Accel is failover acceleration for one cluster, in the services that
// admit only the primary: force these members' servers down where HAProxy
// shows them up (and shut their sessions where they have any), and force
// the new primary's server up where HAProxy does not show it up.
type Accel struct {
	Down []string
	Up   string
	// Leader is the member holding the leader key of a cluster that is
	// not a standby ("" when there is no such positive fact). A new HAProxy
	// worker starts every enabled slot UP before its first check; the
	// other members' slots are then forced down in the services that check
	// /primary, once per worker (see dataplaneapi.Syncer).
	Leader string
	// LeaderTerm is the leader key's create revision (with Leader).
	LeaderTerm int64
	// Hold: the cluster's primary services hold new connections (a
	// planned switchover is under way, see HoldConfig).
	Hold bool
	// Armed: a hold waits for Patroni's before_stop (HoldConfig.AtStop);
	// an HAProxy that cannot hold says so now (Report.HoldRefused).
	Armed bool
	// Switchover: a planned switchover may be under way (requested, or
	// the new leader not yet primary by its own key). A one-shot pass
	// leaves a held frontend as it is then: the daemon's hold.
	Switchover bool
	// HoldRequest identifies the hold (its failover key revision) when
	// Hold is set: a new hold on the same HAProxy worker is a new hold.
	HoldRequest int64
}

// forcing records, for one cluster, the facts forcing has already acted
// on. Entries name the facts themselves (a leader term identified by the
// leader key's create revision, a member's own role and state), never a
// conclusion drawn from a name, so a new fact (a new lease is a new term,
// even for the same member) is always new, and an old one never fires
// twice: no resync or retry forces health again.
type forcing struct {
	term     string // the leader term whose leader was forced up (or was current at first sight)
	downTerm string // the leader term whose other members were forced down
	// down holds the members known not to be primary, with the fact that
	// showed it. A member is forced down when it becomes known not to be
	// primary, once; it leaves the map when it leads (or its own key says
	// it is primary) again.
	down map[string]string
}

// termOf identifies the cluster's leader term: the leader key's value and
// its create revision. "" when there is no leader key.
func termOf(dc *dcs.Cluster) string {
	if dc.Leader == "" {
		return ""
	}
	return fmt.Sprintf("%s (leader key created at revision %d)", dc.Leader, dc.LeaderTerm)
}

// notPrimaryFact returns the fact by which a member's own key says it does
// not serve as primary ("" when it says nothing of the kind: key absent,
// primary, or being promoted). An absent key is never evidence: leader and
// member keys share a lease and expire together when a DB node loses etcd,
// while Patroni's failsafe mode keeps that primary writable.
func notPrimaryFact(dc *dcs.Cluster, name string) string {
	m, ok := dc.Members[name]
	if !ok {
		return ""
	}
	switch {
	case m.Role == "demoted" || m.Role == "replica",
		m.State == "stopped" || m.State == "stopping" || m.State == "crashed":
		return "own key: role " + m.Role + ", state " + m.State
	}
	return ""
}

// claimsPrimary reports whether a member's own key says it serves as
// primary (or is being promoted).
func claimsPrimary(dc *dcs.Cluster, name string) bool {
	m, ok := dc.Members[name]
	return ok && m.State == "running" && (dcs.IsPrimaryRole(m.Role) || m.Role == "promoted")
}

// canForceUp reports whether the leader may be forced up in services that
// check /primary: Patroni answers 200 there as soon as a running member of
// a non-standby cluster holds the leader key. A standby cluster's leader
// answers 503, and the config key is what says the cluster is a standby
// (its new leader's member key still says replica when the leader key
// appears); without a config key nothing is known, so nothing is forced.
func canForceUp(dc *dcs.Cluster) bool {
	m, ok := dc.Members[dc.Leader]
	return ok && m.State == "running" && m.Role != "standby_leader" && dc.Config != nil && !dc.Config.Standby
}

// decideAccel derives a cluster's forcing from the facts in etcd and what
// forcing has already acted on (prev; seen is false the first time pgsvc
// looks at the cluster). It returns the forcing to apply and the record to
// keep once it has been applied. HAProxy's observed state decides, in the
// plan, which of these servers actually get a command.
//
// A member is forced down only on a positive fact: a different member
// holds the leader key, or its own key says it is demoted, a replica or
// stopped. The leader is forced up once per leader term.
func decideAccel(c *selector.Cluster, dc *dcs.Cluster, prev forcing, seen bool) (Accel, forcing) {
	next := forcing{term: prev.term, downTerm: prev.downTerm, down: maps.Clone(prev.down)}
	if next.down == nil {
		next.down = map[string]string{}
	}
	var a Accel
	term := termOf(dc)
	newTerm := term != "" && term != prev.downTerm
	for _, h := range c.Members {
		name := selector.InstanceName(c.Name, selector.Seq(h.Vars))
		fact := ""
		switch {
		case term != "" && name == dc.Leader, term == "" && claimsPrimary(dc, name):
			delete(next.down, name) // primary now: forced down again when it stops being one
			continue
		case term != "":
			fact = "another member holds the leader key: " + term
		default:
			fact = notPrimaryFact(dc, name)
		}
		// A new term is news for every other member (whichever HAProxy
		// still shows up); without a leader key, only a member's own key
		// saying it stopped being primary is.
		if fact == "" || next.down[name] != "" && !newTerm {
			continue // no evidence, or already known not to be primary
		}
		next.down[name] = fact
		a.Down = append(a.Down, name)
	}
	if term != "" {
		next.downTerm = term
	}
	if term != "" && term != prev.term && canForceUp(dc) {
		a.Up, next.term = dc.Leader, term
	}
	if term != "" && dc.Config != nil && !dc.Config.Standby {
		a.Leader, a.LeaderTerm = dc.Leader, dc.LeaderTerm
	}
	if !seen {
		// First sight (pgsvc started): the facts are recorded and nothing
		// is forced for the term; HAProxy's checks are in charge of the
		// state it found. (A worker pgsvc has not forced for yet still
		// gets its non-leaders forced down, see dataplaneapi.Syncer: the
		// Leader fact is passed on for that.)
		next.term = term
		return Accel{Leader: a.Leader, LeaderTerm: a.LeaderTerm}, next
	}
	return a, next
}
