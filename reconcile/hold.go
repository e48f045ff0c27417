package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
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
	// AtStop starts a hold when Patroni's before_stop hook (`pgsvc
	// before-stop`) says the old primary is about to stop, not at the
	// request: the old primary takes writes until then (Patroni's
	// checkpoint), so clients wait only for the shutdown and promotion.
	// Without the hook the hold starts when the leader key leaves the old
	// leader, after PostgreSQL stopped: connections in between fail.
	AtStop bool
}

// DefaultHoldConfig holds (on HAProxy >= 3.0) at most 5 s, well inside
// libpq's usual connect_timeout; Patroni's own promotion took 1.3–1.7 s in
// the lab. Clients whose connect timeout is shorter than a hold see a
// timeout instead of a refusal: hold_connections: false turns it off.
func DefaultHoldConfig() HoldConfig {
	return HoldConfig{Enabled: true, Max: 5 * time.Second, Leaderless: 2 * time.Second}
}

// hold is one cluster's hold: started for one failover request (the key's
// revision and old leader), in process memory only. A pgsvc that starts
// knows of none, so its first pass releases whatever a previous one left.
type hold struct {
	request   int64  // the failover key's mod revision
	oldLeader string // the leader when the hold began
	// armed: waiting for Patroni's before_stop (HoldConfig.AtStop), not
	// holding yet.
	armed      bool
	started    time.Time
	leaderGone time.Time // since when the leader key is absent (zero: present)
	ended      string    // why it ended ("": holding)
	result     string    // how it ended (holdReleased, ...)
	// releaseAgain: a pass held the frontends again after the hold watch
	// ended the hold; the watch sets them back (no new end event).
	releaseAgain bool
	// frontends are the cluster's held services as the last pass computed
	// them: what a release outside a pass (hold_max, shutdown) sets back,
	// when no pass can run (etcd lost, the cluster's desired state broken
	// or gone from the inventory).
	frontends []Service
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
// leader key stays absent, or at cfg.Max (facts: what is known beyond
// etcd's keys). seen is false
// at pgsvc's first look at the cluster: a switchover already under way is
// not held then. It returns the next
// record (nil: none), whether to hold, the next time a decision is due
// (zero: none) and the event, if any.
// holdFacts are what a hold decision knows beyond etcd's keys.
type holdFacts struct {
	holdable bool // the cluster has primary services with a maxconn to hold
	answered bool // the leader key's holder's REST API says role primary, this term
	fenced   bool // HAProxy showed the leader key's holder alone up in the primary services
}

func decideHold(cluster string, dc *dcs.Cluster, prev *hold, seen bool, cfg HoldConfig, now time.Time, facts holdFacts) (*hold, bool, time.Time, *HoldEvent) {
	pending, at := pendingSwitchover(dc, now)
	h := prev
	if h != nil && h.ended != "" && (dc.Failover == nil || dc.Failover.Revision != h.request) {
		h = nil // the request it ended for is gone
	}
	if h == nil {
		if !pending || !cfg.Enabled || !facts.holdable || dc.Config == nil || dc.Config.Standby {
			// Only a cluster known to be a primary one (its config key says
			// so: a standby's leader never answers /primary) with services
			// to hold.
			return nil, false, at, nil
		}
		h = &hold{request: dc.Failover.Revision, oldLeader: dc.Leader, started: now, armed: cfg.AtStop}
		if !seen {
			h.ended, h.result = "pgsvc started during the switchover", holdNotStarted
			return h, false, time.Time{}, nil
		}
		if h.armed {
			return startArmed(cluster, dc, h, cfg, now, facts)
		}
		cause := fmt.Sprintf("switchover requested (failover key at revision %d: leader %q, candidate %q)", h.request, dc.Failover.Leader, dc.Failover.Member)
		h = h.next(dc, now, cfg, facts)
		if h.ended != "" {
			return h, false, time.Time{}, nil
		}
		return h, true, h.due(cfg), &HoldEvent{Cluster: cluster, Started: true, Cause: cause}
	}
	if h.ended != "" {
		return h, false, time.Time{}, nil
	}
	if h.armed {
		return startArmed(cluster, dc, h, cfg, now, facts)
	}
	h = h.next(dc, now, cfg, facts)
	if h.ended != "" {
		return h, false, time.Time{}, &HoldEvent{Cluster: cluster, Cause: h.ended, Result: h.result, Held: now.Sub(h.started)}
	}
	return h, true, h.due(cfg), nil
}

// startArmed starts an armed hold once the old primary is about to stop:
// the before_stop key for this request names it, or (no hook) the leader
// key left it, which Patroni does only after PostgreSQL stopped. An armed
// hold whose request is cleared, or that holding was turned off for, is
// dropped unseen: it never held.
func startArmed(cluster string, dc *dcs.Cluster, h *hold, cfg HoldConfig, now time.Time, facts holdFacts) (*hold, bool, time.Time, *HoldEvent) {
	var cause string
	stop := dc.Stopping
	switch {
	case !cfg.Enabled || !cfg.AtStop:
		return nil, false, time.Time{}, nil
	case stop != nil && stop.Request == h.request && stop.Leader == h.oldLeader:
		cause = fmt.Sprintf("Patroni is stopping %s for the switchover requested at revision %d (before_stop)", h.oldLeader, h.request)
	case dc.Leader != h.oldLeader:
		cause = fmt.Sprintf("the leader key left %s with no word from Patroni's before_stop (is `pgsvc before-stop` its before_stop hook?)", h.oldLeader)
	case dc.Failover == nil || dc.Failover.Revision != h.request:
		return nil, false, time.Time{}, nil
	default:
		return h, false, time.Time{}, nil
	}
	n := *h
	n.armed, n.started = false, now
	m := n.next(dc, now, cfg, facts)
	if m.ended != "" {
		return m, false, time.Time{}, nil
	}
	return m, true, m.due(cfg), &HoldEvent{Cluster: cluster, Started: true, Cause: cause}
}

// How a hold ends (HoldEvent.Result, the metrics' result label).
const (
	holdReleased   = "released"
	holdAborted    = "aborted"
	holdLeaderless = "leaderless"
	holdMax        = "hold_max"
	holdLost       = "reload"
	holdOff        = "off"
	holdShutdown   = "shutdown"
	holdNotStarted = "not_started"
)

// Releaser is an HAProxy whose held frontends can be released outside a
// pass, with its runtime API alone: a release needs neither etcd nor the
// inventory, so a hold ends at hold_max and at shutdown whatever the
// sources do. It sets each frontend to its configured maxconn (one that has it
// is not touched; an operator's runtime maxconn is reset, as by a pass).
type Releaser interface {
	Release(ctx context.Context, services []Service) (Report, error)
}

// HoldObserver receives releases outside a pass (an Observer may
// implement it): the holds they ended (none for what an earlier pgsvc
// left) and the commands applied.
type HoldObserver interface {
	HoldsReleased(ended []HoldEvent, rep Report)
}

// heldFrontends are the services of cluster that a hold sets to maxconn 0.
func heldFrontends(services []Service, cluster string) []Service {
	var out []Service
	for _, svc := range services {
		if svc.Cluster == cluster && svc.ChecksPrimary() && svc.Maxconn > 0 {
			out = append(out, svc)
		}
	}
	return out
}

// next is the hold after the facts of this pass (a copy: records are
// never changed in place).
func (h *hold) next(dc *dcs.Cluster, now time.Time, cfg HoldConfig, facts holdFacts) *hold {
	n := *h
	// A promotion releases only once HAProxy showed the new leader alone up
	// in the primary services (the old primary forced out): released
	// clients must reach it.
	newLeader := dc.Leader != "" && dc.Leader != h.oldLeader && facts.fenced
	switch {
	case !cfg.Enabled:
		n.ended, n.result = "holding was turned off", holdOff
	case newLeader && facts.answered:
		n.ended, n.result = fmt.Sprintf("%s holds the leader key and its REST API says role primary: promotion ended", dc.Leader), holdReleased
	case newLeader && promotedPrimary(dc, dc.Leader):
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
// switchoverUnderWay reports whether a planned switchover may still be
// under way: requested now, or the leader key absent, or its holder not yet
// primary by its own key (Patroni clears the failover key when the
// candidate takes the leader key, before promotion ends).
func switchoverUnderWay(dc *dcs.Cluster, now time.Time) bool {
	if pending, _ := pendingSwitchover(dc, now); pending {
		return true
	}
	return dc.Config != nil && !dc.Config.Standby && (dc.Leader == "" || !promotedPrimary(dc, dc.Leader))
}

func promotedPrimary(dc *dcs.Cluster, name string) bool {
	m, ok := dc.Members[name]
	return ok && m.State == "running" && (m.Role == "primary" || m.Role == "master")
}

// releaseLeftovers releases, before the first pass, every primary frontend
// an earlier pgsvc left holding (killed mid-hold), from the inventory
// alone: the first pass may wait for etcd. Frontends not held are left as
// they are.
func (r *Reconciler) releaseLeftovers(ctx context.Context) {
	rel, ok := r.HAProxy.(Releaser)
	if !ok {
		return
	}
	m, scope := r.In.Model()
	if m == nil {
		return
	}
	var services []Service
	for _, c := range scope {
		d, err := Compute([]*selector.Cluster{c}, Live{}, r.In.node != "")
		if err != nil {
			continue // its first pass reports why; a broken cluster is left as it is
		}
		services = append(services, heldFrontends(d.Services, c.Name)...)
	}
	r.releaseFrontends(ctx, rel, services, "released connections held by an earlier pgsvc",
		"could not release frontends an earlier pgsvc may have left holding; the first pass does")
}

// releaseFrontends sets services' frontends back to their maxconn outside
// any hold record (leftovers at start, a last sweep at shutdown), logging
// each command as done and a failure as failed.
func (r *Reconciler) releaseFrontends(ctx context.Context, rel Releaser, services []Service, done, failed string) {
	if len(services) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rep, err := rel.Release(rctx, services)
	if err != nil {
		r.Log.Warn(failed, "err", err)
		return
	}
	for _, c := range rep.Commands {
		r.Log.Info(done, "cluster", c.Cluster, "service", c.Service, "command", c.Line, "waiting", rep.Released[c.Cluster])
	}
	if o, ok := r.Observer.(HoldObserver); ok && len(rep.Commands) > 0 {
		o.HoldsReleased(nil, rep)
	}
}

// holdOf is the cluster's hold record (nil: none).
func (r *Reconciler) holdOf(cluster string) *hold {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	return r.holds[cluster]
}

// kickHolds wakes the hold watch: the holds or hold_max changed.
func (r *Reconciler) kickHolds() {
	select {
	case r.holdKick <- struct{}{}:
	default:
	}
}

// watchHolds ends holds at hold_max, and every hold when ctx ends, beside
// the loop: a pass in flight never delays a release.
func (r *Reconciler) watchHolds(ctx context.Context) {
	for {
		var fire <-chan time.Time
		t := r.releaseTimer()
		if t != nil {
			fire = t.C
		}
		select {
		case <-ctx.Done():
			stopTimer(t)
			r.releaseHolds(ctx, time.Now(), true)
			return
		case <-r.holdKick:
		case now := <-fire:
			r.releaseHolds(ctx, now, false)
		}
		stopTimer(t)
	}
}

// releaseTimer fires when the first hold reaches hold_max, or a release
// HAProxy did not confirm is due again (nil: no hold under way).
func (r *Reconciler) releaseTimer() *time.Timer {
	cfg := r.holdConfig()
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	var first time.Time
	for c, h := range r.holds {
		if (h.ended != "" && !h.releaseAgain) || h.armed || len(h.frontends) == 0 {
			continue
		}
		at := h.started.Add(cfg.Max)
		if h.releaseAgain {
			at = time.Now()
		}
		if retry := r.releaseRetry[c]; retry.After(at) {
			at = retry
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	if first.IsZero() {
		return nil
	}
	return time.NewTimer(max(time.Until(first), 0))
}

// releaseHolds ends, outside a pass, the holds that reached hold_max (or
// every hold when pgsvc stops), with HAProxy's runtime API alone: a pass
// may be unable to run (etcd lost, the cluster's desired state broken or
// gone from the inventory) or be slow, and a hold must still end. A
// release HAProxy does not confirm is tried again a second later (and by
// the next pass).
func (r *Reconciler) releaseHolds(ctx context.Context, now time.Time, stopping bool) {
	rel, ok := r.HAProxy.(Releaser)
	if !ok {
		return
	}
	cfg := r.holdConfig()
	type due struct {
		cluster string
		was     *hold
		next    hold
	}
	var todo []due
	r.holdMu.Lock()
	for _, c := range sortedKeys(r.holds) {
		h := r.holds[c]
		if (h.ended != "" && !h.releaseAgain) || h.armed || len(h.frontends) == 0 {
			continue
		}
		n := *h
		switch {
		case h.releaseAgain:
			if !stopping && now.Before(r.releaseRetry[c]) {
				continue
			}
			n.releaseAgain = false
		case stopping:
			n.ended, n.result = "pgsvc is stopping", holdShutdown
		case now.Sub(h.started) >= cfg.Max && !now.Before(r.releaseRetry[c]):
			n.ended, n.result = fmt.Sprintf("held for %s without a new primary (hold_max)", cfg.Max), holdMax
		default:
			continue
		}
		todo = append(todo, due{c, h, n})
	}
	r.holdMu.Unlock()
	for _, d := range todo {
		c := d.cluster
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		rep, err := rel.Release(rctx, d.was.frontends)
		cancel()
		if err != nil && stopping {
			r.Log.Error("could not release held connections before stopping; the next pgsvc to start releases them", "cluster", c, "err", err)
			continue
		}
		if err != nil {
			r.Log.Error("could not release held connections; trying again in 1s", "cluster", c, "cause", d.next.ended, "err", err)
			r.holdMu.Lock()
			r.releaseRetry[c] = now.Add(time.Second)
			r.holdMu.Unlock()
			continue
		}
		r.holdMu.Lock()
		delete(r.releaseRetry, c)
		cur := r.holds[c]
		if d.was.releaseAgain {
			if cur == d.was {
				r.holds[c] = &d.next
			}
			r.holdMu.Unlock()
			if len(rep.Commands) == 0 {
				continue // the pass found them released already
			}
			r.Log.Info("released connections a pass held again after hold_max", "cluster", c, "waiting", rep.Released[c])
			if o, ok := r.Observer.(HoldObserver); ok {
				o.HoldsReleased(nil, rep)
			}
			continue
		}
		mine := cur != nil && cur.ended == "" && cur.request == d.was.request && cur.started.Equal(d.was.started)
		if mine {
			// The same hold, whether or not a pass has copied its record
			// since: it ends here.
			r.holds[c] = &d.next
			delete(r.holdDue, c)
		}
		r.holdMu.Unlock()
		if !mine {
			continue // a pass ended it meanwhile and reported it
		}
		r.promos.want(c, "", "") // nothing to ask any more
		ev := HoldEvent{Cluster: c, Cause: d.next.ended, Result: d.next.result, Held: now.Sub(d.was.started)}
		r.Log.Info("released held connections", "cluster", c, "result", ev.Result, "cause", ev.Cause,
			"held", ev.Held.Round(time.Millisecond), "waiting", rep.Released[c])
		if o, ok := r.Observer.(HoldObserver); ok {
			o.HoldsReleased([]HoldEvent{ev}, rep)
		}
	}
}

// releaseAll sets back, as pgsvc stops, the frontends of every hold it
// knows, ended or not: a pass in flight when the hold watch released may
// have held them again. Frontends already accepting are not touched.
func (r *Reconciler) releaseAll(ctx context.Context) {
	rel, ok := r.HAProxy.(Releaser)
	if !ok {
		return
	}
	r.holdMu.Lock()
	var services []Service
	for _, c := range sortedKeys(r.holds) {
		services = append(services, r.holds[c].frontends...)
	}
	r.holdMu.Unlock()
	r.releaseFrontends(ctx, rel, services, "released connections held again by the last pass",
		"could not release held connections before stopping; the next pgsvc to start releases them")
}
