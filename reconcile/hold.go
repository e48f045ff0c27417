package reconcile

import (
	"fmt"
	"time"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
)

// HoldConfig is holding new connections through planned switchovers: the
// primary services' frontends stop accepting (maxconn 0; clients wait in
// the kernel's backlog) from the moment Patroni is asked for a switchover
// until the new primary is promoted. HAProxy < 3.0 never holds (see
// dataplaneapi).
type HoldConfig struct {
	Enabled bool
	// Max ends every hold: clients with a shorter connect timeout see a
	// timeout instead of a refusal.
	Max time.Duration
	// Leaderless ends a hold when the leader key stays absent this long
	// (Patroni releases and takes it within milliseconds in a switchover).
	Leaderless time.Duration
}

// DefaultHoldConfig holds at most 5 s, well inside libpq's usual
// connect_timeout; Patroni's own promotion took 1.3–1.6 s in the lab.
// Holding is opt-in (hold_connections: true): a hold outlives hold_max
// when no pass can run (etcd lost mid-hold, pgsvc stopped mid-hold, the
// cluster's desired state broken), and until a release that needs no pass
// exists, the default must never be worse than not holding.
func DefaultHoldConfig() HoldConfig {
	return HoldConfig{Enabled: false, Max: 5 * time.Second, Leaderless: 2 * time.Second}
}

// hold is one cluster's hold: started for one failover request (the key's
// revision and old leader), in process memory only. A pgsvc that starts
// knows of none, so its first pass releases whatever a previous one left.
type hold struct {
	request    int64  // the failover key's mod revision
	oldLeader  string // the leader when the hold began
	started    time.Time
	leaderGone time.Time // since when the leader key is absent (zero: present)
	ended      string    // why it ended ("": holding)
	result     string    // how it ended (holdReleased, ...)
}

// HoldEvent is a hold's start or end, for logs and metrics.
type HoldEvent struct {
	Cluster string
	Started bool          // false: ended
	Cause   string        // what started or ended it
	Result  string        // on end: released, aborted, leaderless, hold_max, reload or off
	Held    time.Duration // on end: how long
}

// pendingSwitchover reports whether the failover key asks for a switchover
// now (a scheduled one once its time has come), and when it will if later.
func pendingSwitchover(dc *dcs.Cluster, now time.Time) (bool, time.Time) {
	f := dc.Failover
	if f == nil {
		return false, time.Time{}
	}
	if !f.ScheduledAt.IsZero() && now.Before(f.ScheduledAt) {
		return false, f.ScheduledAt
	}
	return true, time.Time{}
}

// decideHold advances a cluster's hold by the facts: it starts on a
// requested switchover (never on a crash failover: nothing announces
// one), and ends when the new leader's own key says it is primary, when
// the request is cleared with the leader unchanged (aborted), when the
// leader key stays absent, at cfg.Max, or when the worker that held is
// gone (lost). seen is false at pgsvc's first look at the cluster: a
// switchover already under way is not held then. It returns the next
// record (nil: none), whether to hold, the next time a decision is due
// (zero: none) and the event, if any.
func decideHold(cluster string, dc *dcs.Cluster, prev *hold, seen bool, cfg HoldConfig, now time.Time, lost string) (*hold, bool, time.Time, *HoldEvent) {
	pending, at := pendingSwitchover(dc, now)
	h := prev
	if h != nil && h.ended != "" && (dc.Failover == nil || dc.Failover.Revision != h.request) {
		h = nil // the request it ended for is gone
	}
	if h == nil {
		if !pending || !cfg.Enabled {
			return nil, false, at, nil
		}
		h = &hold{request: dc.Failover.Revision, oldLeader: dc.Leader, started: now}
		if !seen {
			h.ended, h.result = "pgsvc started during the switchover", holdNotStarted
			return h, false, time.Time{}, nil
		}
		cause := fmt.Sprintf("switchover requested (failover key at revision %d: leader %q, candidate %q)", h.request, dc.Failover.Leader, dc.Failover.Member)
		h = h.next(dc, now, cfg, lost)
		if h.ended != "" {
			return h, false, time.Time{}, nil
		}
		return h, true, h.due(cfg), &HoldEvent{Cluster: cluster, Started: true, Cause: cause}
	}
	if h.ended != "" {
		return h, false, time.Time{}, nil
	}
	h = h.next(dc, now, cfg, lost)
	if h.ended != "" {
		return h, false, time.Time{}, &HoldEvent{Cluster: cluster, Cause: h.ended, Result: h.result, Held: now.Sub(h.started)}
	}
	return h, true, h.due(cfg), nil
}

// How a hold ends (HoldEvent.Result, the metrics' result label).
const (
	holdReleased   = "released"
	holdAborted    = "aborted"
	holdLeaderless = "leaderless"
	holdMax        = "hold_max"
	holdLost       = "reload"
	holdOff        = "off"
	holdNotStarted = "not_started"
)

// next is the hold after the facts of this pass (a copy: records are
// never changed in place).
func (h *hold) next(dc *dcs.Cluster, now time.Time, cfg HoldConfig, lost string) *hold {
	n := *h
	switch {
	case !cfg.Enabled:
		n.ended, n.result = "holding was turned off", holdOff
	case lost != "":
		n.ended, n.result = lost, holdLost
	case dc.Leader != "" && dc.Leader != h.oldLeader && promotedPrimary(dc, dc.Leader):
		n.ended, n.result = fmt.Sprintf("%s holds the leader key and its own key says role %s", dc.Leader, dc.Members[dc.Leader].Role), holdReleased
	case dc.Leader == h.oldLeader && (dc.Failover == nil || dc.Failover.Revision != h.request):
		n.ended, n.result = fmt.Sprintf("the switchover request was cleared and %s still leads", h.oldLeader), holdAborted
	case dc.Leader == "" && !h.leaderGone.IsZero() && now.Sub(h.leaderGone) >= cfg.Leaderless:
		n.ended, n.result = fmt.Sprintf("no leader key for %s", now.Sub(h.leaderGone).Round(time.Millisecond)), holdLeaderless
	case now.Sub(h.started) >= cfg.Max:
		n.ended, n.result = fmt.Sprintf("held for %s without a new primary (hold_max)", cfg.Max), holdMax
	}
	if dc.Leader == "" {
		if n.leaderGone.IsZero() {
			n.leaderGone = now
		}
	} else {
		n.leaderGone = time.Time{}
	}
	return &n
}

// due is when the hold must be looked at again without a new event.
func (h *hold) due(cfg HoldConfig) time.Time {
	at := h.started.Add(cfg.Max)
	if !h.leaderGone.IsZero() {
		if gone := h.leaderGone.Add(cfg.Leaderless); gone.Before(at) {
			at = gone
		}
	}
	return at
}

// promotedPrimary reports whether a member's own key says it runs as the
// primary: Patroni writes the leader key before promotion ends (a write
// routed then fails read-only), and the role primary (master before
// Patroni 4) once PostgreSQL accepts writes.
func promotedPrimary(dc *dcs.Cluster, name string) bool {
	m, ok := dc.Members[name]
	return ok && m.State == "running" && (m.Role == "primary" || m.Role == "master")
}
