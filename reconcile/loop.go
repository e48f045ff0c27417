package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgsvc/pgsvc/selector"
)

// Report is what one pass did to HAProxy (or, in a dry run, would do).
type Report struct {
	Commands []AppliedCommand `json:"commands"`
	Written  []string         `json:"files_written,omitempty"`
	Removed  []string         `json:"files_removed,omitempty"`
	Reload   []string         `json:"reload_reasons,omitempty"`
	Reloaded bool             `json:"reloaded,omitempty"`
	// FileChanges holds each written file's changed lines ("-" old, "+" new).
	FileChanges map[string][]string `json:"file_changes,omitempty"`
	// RuntimeDone is when the last runtime command was acknowledged: the
	// moment HAProxy's state changed (files are written after it).
	RuntimeDone time.Time `json:"-"`
	// HoldRefused says why this HAProxy cannot hold new connections (set
	// when a hold was asked for).
	HoldRefused string `json:"hold_refused,omitempty"`
	// HoldLost names the clusters whose hold the worker lost (a reload or
	// restart mid-hold), with why.
	HoldLost map[string]string `json:"holds_lost,omitempty"`
	// Released counts, per cluster, the connections waiting in the kernel's
	// accept queues of the frontends a pass released: the clients a hold
	// kept waiting (absent when pgsvc cannot see HAProxy's sockets).
	Released map[string]int64 `json:"released,omitempty"`
	// HeldLeft names the frontends a one-shot pass left holding: a running
	// pgsvc holds them through a switchover and releases them itself.
	HeldLeft []string `json:"held_left,omitempty"`
	// Fenced names, per cluster whose primary services this pass read,
	// the leader term in which HAProxy shows no server up in them but the
	// leader's (the old primary forced out): what `pgsvc fence` waits for.
	Fenced map[string]Fence `json:"-"`
}

// Fence is a leader term: the leader key's holder and create revision.
type Fence struct {
	Leader string `json:"leader"`
	Term   int64  `json:"term"`
}

// AppliedCommand is one runtime command, with its subjects for logs and metrics.
type AppliedCommand struct {
	Cluster string `json:"cluster"`
	Service string `json:"service"`
	Server  string `json:"server"`
	Kind    string `json:"kind"`
	Line    string `json:"command"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// Empty reports whether nothing was (or would be) changed.
func (r Report) Empty() bool {
	return len(r.Commands)+len(r.Written)+len(r.Removed)+len(r.Reload) == 0
}

// HAProxy applies desired services to a running HAProxy. Apply makes the
// servers of the given services equal to desired at runtime, then keeps the
// config files of the given clusters (nil: all) equal to desired, reloading
// only for structural changes. A dry run reads and plans, changes nothing.
type HAProxy interface {
	Apply(ctx context.Context, services []Service, clusters map[string]bool, accel map[string]Accel, dryRun bool) (Report, error)
}

// PassInfo describes one finished pass.
type PassInfo struct {
	Duration time.Duration
	Full     bool
	Revision int64 // etcd revision the pass's inputs include
	Causes   map[string]Cause
	Report   Report
	Err      error
	Source   string // of Err: "inventory" (desired state) or "haproxy"
	// ClusterErrors are the clusters that failed alone (their desired state
	// could not be computed, or HAProxy refused one of their commands);
	// every other cluster of the pass converged. Err is set only when the
	// pass failed as a whole.
	ClusterErrors ClusterErrors
	DryRun        bool
	Holds         []HoldEvent // holds started or ended by this pass
	// Applied is, per cluster, the etcd revision whose state HAProxy shows
	// (see Reconciler.recordApplied); nil for dry runs.
	Applied map[string]int64
	// Fenced is, per cluster, the leader term whose old primaries HAProxy
	// showed out of the primary services in the cluster's last pass (see
	// Report.Fenced); nil for dry runs.
	Fenced map[string]Fence
	// Armed are all the clusters (not only this pass's) whose hold waits
	// for Patroni's before_stop (HoldConfig.AtStop); nil for dry runs.
	Armed []string
}

// Observer receives what the loop does (metrics, tests). Methods must be cheap.
type Observer interface {
	Pass(p PassInfo)
	Desired(services []Service)
}

// UnreachableError is a pass that could not talk to HAProxy at all (its
// socket refused, a reply could not be read): nothing is known of any
// cluster, so every pass waits behind one backoff. Other failures of a
// whole pass (a file HAProxy rejects, a failed reload) come after the
// runtime changes were applied and hold nothing back.
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// ClusterErrors are failures confined to single clusters, by name: the
// other clusters of the pass were applied.
type ClusterErrors map[string]error

func (e ClusterErrors) Error() string {
	errs := make([]error, 0, len(e))
	for _, name := range sortedKeys(e) {
		errs = append(errs, fmt.Errorf("cluster %s: %w", name, e[name]))
	}
	return errors.Join(errs...).Error()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Reconciler is the loop: take dirty clusters, compute their desired
// services, let HAProxy converge, record. It never applies an event directly.
type Reconciler struct {
	In       *Inputs
	HAProxy  HAProxy
	Log      *slog.Logger
	Resync   time.Duration // periodic full pass; 0 = never
	Observer Observer
	// Hold is holding new connections through planned switchovers (the
	// zero value holds never); SetHold changes it while Run runs.
	Hold    HoldConfig
	holdSet atomic.Pointer[HoldConfig]
	// Promotion asks a held cluster's new leader whether promotion ended
	// (nil: the hold ends when the leader's own key says primary).
	Promotion PromotionProbe
	promos    *promotions // Promotion's probes while Run runs

	leaders map[string]string  // last known leader (fail static on no leader key)
	forced  map[string]forcing // facts forcing has acted on, per cluster
	retries map[string]*retry  // failed clusters, each with its own backoff
	// fullRetry is a full pass that failed after the runtime converged (a
	// file HAProxy rejects, a reload): retried whole, on its own backoff,
	// holding nothing back.
	fullRetry *retry
	// gate holds every pass back while HAProxy cannot be reached (its socket
	// refuses or its replies cannot be read, see UnreachableError): events
	// wait for it instead of each failing at once.
	gate    time.Time
	unreach *backoff
	synced  bool // a full pass has succeeded
	// holds are the clusters' switchover holds, with when each must be
	// decided again without an event (a scheduled switchover, hold_max).
	// holdMu guards them: the hold watch (watchHolds) ends holds at
	// hold_max while a pass runs. releaseRetry is when a release HAProxy
	// did not confirm is tried again; holdKick wakes the watch when the
	// holds change.
	holdMu       sync.Mutex
	initOnce     sync.Once
	holds        map[string]*hold
	holdDue      map[string]time.Time
	releaseRetry map[string]time.Time
	holdKick     chan struct{}
	holdRefusals string // the last reason HAProxy cannot hold, logged once
	// applied is, per cluster, the etcd revision whose state HAProxy
	// shows; current says the cluster has nothing pending (its last pass
	// converged), so later passes move its revision on.
	applied map[string]int64
	current map[string]bool
	fenced  map[string]Fence
}

// retry is a failed cluster waiting for its next attempt.
type retry struct {
	backoff *backoff
	at      time.Time
	cause   Cause
}

// init makes the maps once: Run, Pass and SetHold (a SIGHUP that may
// come before Run starts) all call it.
func (r *Reconciler) init() { r.initOnce.Do(r.makeMaps) }

func (r *Reconciler) makeMaps() {
	if r.leaders == nil {
		r.leaders, r.forced, r.retries = map[string]string{}, map[string]forcing{}, map[string]*retry{}
		r.holds, r.holdDue, r.releaseRetry = map[string]*hold{}, map[string]time.Time{}, map[string]time.Time{}
		r.holdKick = make(chan struct{}, 1)
		r.applied, r.current, r.fenced = map[string]int64{}, map[string]bool{}, map[string]Fence{}
		r.unreach = newRetryBackoff()
	}
}

// Run reconciles until ctx ends. A pass in flight when ctx ends is finished
// with a short grace period so HAProxy is never left half-way.
func (r *Reconciler) Run(ctx context.Context) error {
	r.init()
	var tick <-chan time.Time
	if r.Resync > 0 {
		t := time.NewTicker(r.Resync)
		defer t.Stop()
		tick = t.C
	}
	if r.Promotion != nil {
		r.promos = newPromotions(ctx, r.Promotion, func(c string) { r.In.Mark(c, CauseHold) }, func(c, url string, err error) {
			r.Log.Warn("cannot ask the new leader's REST API whether promotion ended; the hold ends when its member key says primary",
				"cluster", c, "url", url, "err", err)
		})
		defer r.promos.stopAll()
	}
	r.releaseLeftovers(ctx)
	// hold_max and shutdown releases must not wait for a pass: a slow one
	// (haproxy -c of a large conf dir, a reload) would stretch a hold
	// past what clients were promised.
	watched := make(chan struct{})
	go func() { defer close(watched); r.watchHolds(ctx) }()
	for {
		var due <-chan time.Time
		timer := r.retryTimer()
		if timer != nil {
			due = timer.C
		}
		select {
		case <-ctx.Done():
			stopTimer(timer)
			<-watched
			// A pass in flight when the watch released may have held again.
			r.releaseAll(ctx)
			return nil
		case <-r.In.Wake():
		case <-tick:
			r.In.MarkAll(CauseResync)
		case now := <-due:
			r.markDue(now)
		}
		stopTimer(timer)
		if ctx.Err() != nil {
			continue // stopping: the ctx.Done case ends the loop, no new pass
		}
		if time.Now().Before(r.gate) && r.In.pendingAll() != CauseHAProxy {
			// HAProxy unreachable: the marks wait for the gate, unless a new
			// worker answered (its servers need their forced state now).
			continue
		}
		passCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_, _ = r.Pass(passCtx, false) // failures are logged and scheduled by Pass
		cancel()
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// retryTimer fires at the earliest scheduled retry or the gate (nil: none).
// A gate already passed is not waited for: the pass it held is due.
func (r *Reconciler) retryTimer() *time.Timer {
	var first time.Time
	if time.Now().Before(r.gate) {
		first = r.gate
	}
	if rt := r.fullRetry; rt != nil && !rt.at.IsZero() && (first.IsZero() || rt.at.Before(first)) {
		first = rt.at
	}
	r.holdMu.Lock()
	for _, at := range r.holdDue {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	r.holdMu.Unlock()
	for _, rt := range r.retries {
		if rt.at.IsZero() {
			continue // marked, waiting for its pass
		}
		if first.IsZero() || rt.at.Before(first) {
			first = rt.at
		}
	}
	if first.IsZero() {
		return nil
	}
	return time.NewTimer(max(time.Until(first), 0))
}

// markDue marks the clusters whose retry time has come. Their backoff
// stays until a pass tells whether they converged; the time is cleared so
// a cluster that no pass takes (sources not ready, gone from the
// inventory) does not keep the timer firing.
func (r *Reconciler) markDue(now time.Time) {
	var holdsDue []string
	r.holdMu.Lock()
	for name, at := range r.holdDue {
		if !at.After(now) {
			holdsDue = append(holdsDue, name)
			delete(r.holdDue, name)
		}
	}
	r.holdMu.Unlock()
	r.In.mu.Lock()
	defer r.In.mu.Unlock()
	marked := false
	if rt := r.fullRetry; rt != nil && !rt.at.IsZero() && !rt.at.After(now) {
		r.In.markAll(rt.cause)
		rt.at = time.Time{}
	}
	for name, rt := range r.retries {
		if !rt.at.IsZero() && !rt.at.After(now) {
			r.In.mark(name, rt.cause)
			rt.at = time.Time{}
			marked = true
		}
	}
	for _, name := range holdsDue {
		r.In.mark(name, CauseHold)
		marked = true
	}
	if marked {
		r.In.notify()
	}
}

// Pass reconciles the dirty clusters once. A cluster that fails is left as
// it is in HAProxy and retried after its own backoff; the others converge.
func (r *Reconciler) Pass(ctx context.Context, dryRun bool) (Report, error) {
	r.init()
	start := time.Now()
	w := r.In.take()
	if !w.ready || len(w.clusters) == 0 {
		return Report{}, nil
	}
	desired, accel, next, holds, broken, err := r.desired(w)
	var rep Report
	var refused ClusterErrors
	var holdEvents []HoldEvent
	source := "inventory"
	if err == nil {
		source = "haproxy"
		var scope map[string]bool
		if !w.full || len(broken) > 0 {
			// A keyed pass, or a full one without the broken clusters:
			// their files and servers are not this pass's to touch.
			scope = make(map[string]bool, len(w.clusters))
			for _, c := range w.clusters {
				if _, dirty := w.causes[c.Name]; (w.full || dirty) && broken[c.Name] == nil {
					scope[c.Name] = true
				}
			}
		}
		rep, err = r.HAProxy.Apply(ctx, desired, scope, accel, dryRun)
		if errors.As(err, &refused) {
			err = nil
		}
		if !dryRun {
			var unreachable *UnreachableError
			r.recordForcing(next, rep, errors.As(err, &unreachable))
			holdEvents = r.recordHolds(holds, rep)
		}
	}
	clusterErrs := ClusterErrors{}
	maps.Copy(clusterErrs, broken)
	maps.Copy(clusterErrs, refused)
	var applied map[string]int64
	var fenced map[string]Fence
	var armed []string
	if !dryRun {
		applied = r.recordApplied(w, err, clusterErrs)
		fenced = r.recordFenced(w, rep)
		armed = r.armed()
	}
	if r.Observer != nil {
		r.Observer.Pass(PassInfo{Duration: time.Since(start), Full: w.full, Revision: w.revision, Causes: w.causes, Report: rep,
			Err: err, Source: source, ClusterErrors: clusterErrs, DryRun: dryRun, Holds: holdEvents, Applied: applied, Fenced: fenced, Armed: armed})
	}
	result := err
	if result == nil && len(clusterErrs) > 0 {
		result = clusterErrs
	}
	if dryRun {
		return rep, result
	}
	// What was applied is logged even when the pass failed part-way.
	r.logReport(w, rep)
	if rep.Reloaded && !w.full {
		// Every backend came back from the files in a new worker, not only
		// this pass's: the next pass verifies (and forces) them all.
		r.In.MarkAll(CauseHAProxy)
	}
	if err != nil && source == "inventory" {
		// Bad input is terminal: HAProxy stays as it is until the inputs change.
		r.Log.Error("desired state cannot be computed, HAProxy is left as it is until the inputs change", "err", err)
	} else {
		r.schedule(w, err, refused, broken)
	}
	if result == nil && w.full && !r.synced {
		r.synced = true
		r.Log.Info("HAProxy in sync", "etcd_revision", w.revision, "services", len(desired))
	}
	return rep, result
}

// recordApplied moves each cluster's applied revision: a cluster this pass
// converged shows the pass's inputs (revision w.revision); a cluster this
// pass left out that has nothing pending (its last pass converged, so no
// event since touched it) shows them too. A cluster that failed keeps the
// revision it last showed. It returns a copy for the observer.
func (r *Reconciler) recordApplied(w work, passErr error, errs ClusterErrors) map[string]int64 {
	for _, c := range w.clusters {
		r.current[c.Name] = passErr == nil && errs[c.Name] == nil
	}
	if passErr == nil {
		for c, ok := range r.current {
			if ok && w.revision > r.applied[c] {
				r.applied[c] = w.revision
			}
		}
	}
	return maps.Clone(r.applied)
}

// recordFenced keeps, per cluster of the pass, the leader term its HAProxy
// shows fenced; a cluster whose old primary still shows up, or whose
// primary services were not read, has none.
func (r *Reconciler) recordFenced(w work, rep Report) map[string]Fence {
	for _, c := range w.clusters {
		// A read-back fact of the primary services: it holds whatever
		// else of the cluster failed.
		f, ok := rep.Fenced[c.Name]
		if !ok {
			delete(r.fenced, c.Name)
			continue
		}
		if r.fenced[c.Name] != f {
			if h := r.holdOf(c.Name); h != nil && h.ended == "" {
				// A hold whose promotion this pass may already have seen
				// releases once fenced: decide again now.
				r.In.Mark(c.Name, CauseHold)
			}
		}
		r.fenced[c.Name] = f
	}
	return maps.Clone(r.fenced)
}

// schedule records each cluster's outcome: a cluster HAProxy refused is
// retried after its own jittered backoff (a new event for it still gets a
// pass at once: it carries new facts, and the cluster's other commands are
// applied); a broken cluster (its own bad input) waits for its inputs to
// change; a cluster that converged forgets its backoff. When HAProxy
// could not be reached, every pass waits behind one jittered backoff.
func (r *Reconciler) schedule(w work, passErr error, refused ClusterErrors, broken map[string]error) {
	now := time.Now()
	var unreachable *UnreachableError
	if errors.As(passErr, &unreachable) {
		// Nothing is known of any cluster: all of them wait for the gate.
		r.In.remark(w)
		d := jitter(r.unreach.next())
		r.gate = now.Add(d)
		r.Log.Error("reconcile failed, HAProxy is left as it is; retrying", "err", passErr,
			"clusters", len(w.clusters), "retry_in", d.Round(time.Millisecond))
		return
	}
	r.unreach.reset()
	r.gate = time.Time{}
	if passErr != nil && w.full {
		// The runtime converged but the files or the reload did not: the
		// full pass is retried whole on its own backoff, and passes for
		// new events still run (they carry switchovers).
		if r.fullRetry == nil {
			r.fullRetry = &retry{backoff: newRetryBackoff(), cause: CauseResync}
		}
		d := jitter(r.fullRetry.backoff.next())
		r.fullRetry.at = now.Add(d)
		r.Log.Error("reconcile failed after the runtime changes were applied; retrying the full pass", "err", passErr,
			"clusters", len(w.clusters), "retry_in", d.Round(time.Millisecond))
		return
	}
	if w.full {
		r.fullRetry = nil
	}
	if passErr != nil {
		// A keyed pass: each of its clusters retries on its own backoff.
		r.Log.Error("reconcile failed after the runtime changes were applied; retrying", "err", passErr, "clusters", len(w.clusters))
	}
	for _, c := range w.clusters {
		cerr := refused[c.Name]
		if passErr != nil {
			cerr = passErr
		}
		switch {
		case broken[c.Name] != nil:
			delete(r.retries, c.Name)
			r.Log.Error("cluster left as it is in HAProxy: its desired state cannot be computed; waiting for its inputs to change",
				"cluster", c.Name, "err", broken[c.Name])
		case cerr != nil:
			rt := r.retries[c.Name]
			if rt == nil {
				rt = &retry{backoff: newRetryBackoff(), cause: w.causes[c.Name]}
				r.retries[c.Name] = rt
			}
			d := jitter(rt.backoff.next())
			rt.at = now.Add(d)
			if passErr == nil {
				r.Log.Error("cluster left as it is in HAProxy where it failed; the other clusters are applied; retrying",
					"cluster", c.Name, "err", cerr, "retry_in", d.Round(time.Millisecond))
			}
		default:
			delete(r.retries, c.Name)
		}
	}
}

// jitter spreads retries over [0.8d, 1.2d) so failing clusters do not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// desired computes the dirty clusters' services and forcing. A cluster
// whose services cannot be computed (a selector failing on live data, say)
// is left out whole and returned in broken: its HAProxy services stay as
// they are while the other clusters are reconciled. An error that is not
// one cluster's (two clusters binding one port) fails the pass.
func (r *Reconciler) desired(w work) ([]Service, map[string]Accel, map[string]forcing, holdUpdate, map[string]error, error) {
	live, raw := r.In.live(w.clusters, r.leaders)
	sameNode := r.In.node != ""
	d, err := Compute(w.clusters, live, sameNode)
	var broken map[string]error
	if err != nil {
		broken = map[string]error{}
		var good []*selector.Cluster
		for _, c := range w.clusters {
			if _, cerr := Compute([]*selector.Cluster{c}, live, false); cerr != nil {
				broken[c.Name] = cerr
			} else {
				good = append(good, c)
			}
		}
		if len(broken) == 0 || len(good) == 0 {
			return nil, nil, nil, holdUpdate{}, nil, err
		}
		if d, err = Compute(good, live, sameNode); err != nil {
			return nil, nil, nil, holdUpdate{}, nil, err
		}
	}
	if r.Observer != nil {
		r.Observer.Desired(d.Services)
	}
	accel, next := map[string]Accel{}, map[string]forcing{}
	holds := holdUpdate{prev: map[string]*hold{}, next: map[string]*hold{}, due: map[string]time.Time{}, ask: map[string]promotionTarget{}}
	now := time.Now()
	for _, c := range w.clusters {
		dc := raw[c.Name]
		if broken[c.Name] != nil || dc == nil {
			continue
		}
		prev, seen := r.forced[c.Name]
		a, n := decideAccel(c, dc, prev, seen)
		frontends := heldFrontends(d.Services, c.Name)
		facts := holdFacts{
			holdable: len(frontends) > 0,
			answered: r.promos.answeredFor(c.Name, termOf(dc)),
			fenced:   r.fenced[c.Name] == Fence{Leader: dc.Leader, Term: dc.LeaderTerm},
		}
		prevHold := r.holdOf(c.Name)
		holds.prev[c.Name] = prevHold
		h, on, due, ev := decideHold(c.Name, dc, prevHold, seen, r.holdConfig(), now, facts)
		holds.ask[c.Name] = promotionTarget{}
		if on {
			h.frontends = frontends // h is this pass's copy
			if dc.Leader != "" && dc.Leader != h.oldLeader {
				holds.ask[c.Name] = promotionTarget{term: termOf(dc), url: dc.Members[dc.Leader].APIURL}
			}
		}
		a.Hold = on
		a.Armed = h != nil && h.armed && h.ended == ""
		a.Switchover = switchoverUnderWay(dc, now)
		if on {
			a.HoldRequest = h.request
		}
		holds.next[c.Name], holds.due[c.Name] = h, due
		if ev != nil {
			holds.events = append(holds.events, *ev)
		}
		next[c.Name] = n
		accel[c.Name] = a
	}
	return d.Services, accel, next, holds, broken, nil
}

// SetHold changes the switchover hold from the next pass on (SIGHUP); a
// new hold_max applies to holds under way at once.
func (r *Reconciler) SetHold(h HoldConfig) {
	r.init()
	r.holdSet.Store(&h)
	r.kickHolds()
}

func (r *Reconciler) holdConfig() HoldConfig {
	if h := r.holdSet.Load(); h != nil {
		return *h
	}
	return r.Hold
}

// holdUpdate is what a pass decided about its clusters' holds.
type holdUpdate struct {
	prev   map[string]*hold // the records the pass decided from
	next   map[string]*hold
	due    map[string]time.Time // zero: nothing due
	events []HoldEvent
	// ask is, per cluster, the new leader whose REST API is asked whether
	// promotion ended (zero: ask nothing).
	ask map[string]promotionTarget
}

// recordHolds keeps the pass's holds; a hold HAProxy's worker lost (a
// reload or restart mid-hold) ends here. Starts and ends are logged.
func (r *Reconciler) recordHolds(u holdUpdate, rep Report) []HoldEvent {
	if rep.HoldRefused != "" {
		// This HAProxy cannot hold: the holds this pass started or armed
		// never were.
		for c, h := range u.next {
			if h != nil && h.armed && h.ended == "" {
				n := *h
				n.ended, n.result = rep.HoldRefused, holdNotStarted
				u.next[c] = &n
			}
		}
		kept := u.events[:0]
		for _, ev := range u.events {
			if h := u.next[ev.Cluster]; ev.Started && h != nil {
				n := *h
				n.ended, n.result = rep.HoldRefused, holdNotStarted
				u.next[ev.Cluster], u.due[ev.Cluster] = &n, time.Time{}
				continue
			}
			kept = append(kept, ev)
		}
		u.events = kept
	}
	for c, why := range rep.HoldLost {
		if h := u.next[c]; h != nil && h.ended == "" {
			n := *h
			n.ended, n.result = why, holdLost
			u.next[c], u.due[c] = &n, time.Time{}
			u.events = append(u.events, HoldEvent{Cluster: c, Cause: why, Result: holdLost, Held: time.Since(h.started)})
		}
	}
	r.holdMu.Lock()
	for c, h := range u.next {
		if cur, was := r.holds[c], u.prev[c]; cur != was && cur != nil && cur.ended != "" && was != nil && was.ended == "" {
			// The hold watch ended this hold (hold_max) while the pass
			// ran: its release stands, and its end was reported there. If
			// the pass held the frontends again, the watch releases them
			// again at once: the next pass may not come (etcd lost, the
			// desired state broken).
			if h != nil && h.ended == "" {
				n := *cur
				n.releaseAgain, n.frontends = true, h.frontends // what this pass held
				cur = &n
				r.holds[c] = cur
			}
			u.next[c], u.ask[c] = cur, promotionTarget{}
			u.events = slices.DeleteFunc(u.events, func(ev HoldEvent) bool { return ev.Cluster == c })
			continue
		}
		if h == nil {
			delete(r.holds, c)
		} else {
			r.holds[c] = h
		}
		if at := u.due[c]; at.IsZero() {
			delete(r.holdDue, c)
		} else {
			r.holdDue[c] = at
		}
	}
	r.holdMu.Unlock()
	r.kickHolds()
	for c, a := range u.ask {
		if h := u.next[c]; h == nil || h.ended != "" {
			a = promotionTarget{}
		}
		r.promos.want(c, a.term, a.url)
	}
	for _, ev := range u.events {
		if ev.Started {
			r.Log.Info("holding new connections on the primary services", "cluster", ev.Cluster, "cause", ev.Cause, "hold_max", r.holdConfig().Max)
			continue
		}
		r.Log.Info("released held connections", "cluster", ev.Cluster, "result", ev.Result, "cause", ev.Cause,
			"held", ev.Held.Round(time.Millisecond), "waiting", rep.Released[ev.Cluster])
	}
	if rep.HoldRefused != "" && rep.HoldRefused != r.holdRefusals {
		r.Log.Info("not holding connections through switchovers", "reason", rep.HoldRefused)
	}
	if rep.HoldRefused != "" {
		r.holdRefusals = rep.HoldRefused
	}
	return u.events
}

// armed lists the clusters whose hold waits for Patroni's before_stop.
func (r *Reconciler) armed() []string {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	out := []string{}
	for _, c := range sortedKeys(r.holds) {
		if h := r.holds[c]; h.armed && h.ended == "" {
			out = append(out, c)
		}
	}
	return out
}

// recordForcing keeps what the pass's forcing acted on. A cluster in which
// HAProxy refused a command still counts as acted on: forcing happens at
// most once per fact, never on a retry. Only when HAProxy could not be
// reached (unreached) does a cluster without a command in the report keep
// its old record, so its forcing is tried once HAProxy answers.
func (r *Reconciler) recordForcing(next map[string]forcing, rep Report, unreached bool) {
	touched := map[string]bool{}
	for _, c := range rep.Commands {
		touched[c.Cluster] = true
	}
	for c, f := range next {
		if unreached && !touched[c] {
			continue
		}
		r.forced[c] = f
	}
}

func (r *Reconciler) logReport(w work, rep Report) {
	for _, c := range rep.Commands {
		r.Log.Info("applied", "cluster", c.Cluster, "service", c.Service, "server", c.Server, "kind", c.Kind,
			"before", c.From, "after", c.To, "cause", string(w.causes[c.Cluster]), "command", c.Line, "etcd_revision", w.revision)
	}
	if len(rep.Written)+len(rep.Removed) > 0 {
		r.Log.Info("config files updated", "written", rep.Written, "removed", rep.Removed, "reload", rep.Reloaded, "reasons", rep.Reload)
	}
}

// ErrNotReady is returned by one-shot passes when a source is missing.
var ErrNotReady = errors.New("sources not ready: no inventory or no etcd state")

type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

// newRetryBackoff is the loop's: 100 ms doubling to 10 s.
func newRetryBackoff() *backoff { return newBackoff(100*time.Millisecond, 10*time.Second) }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// DesiredNow computes the desired state of every cluster in scope from the
// inputs as they are (for status and one-shot commands).
func DesiredNow(in *Inputs) (Desired, error) {
	m, scope := in.Model()
	if m == nil {
		return Desired{}, ErrNotReady
	}
	live, _ := in.live(scope, map[string]string{})
	return Compute(scope, live, in.node != "")
}
