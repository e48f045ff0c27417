package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// Accel is failover acceleration for one cluster, in the services that
// admit only the primary: force these members' servers down (and shut their
// sessions), and force the confirmed new primary's server up.
type Accel struct {
	Down []string
	Up   string
}

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
}

// AppliedCommand is one runtime command, with its subjects for logs and metrics.
type AppliedCommand struct {
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
	DryRun   bool
}

// Observer receives what the loop does (metrics, tests). Methods must be cheap.
type Observer interface {
	Pass(p PassInfo)
	Desired(services []Service)
}

// Reconciler is the loop: take dirty clusters, compute their desired
// services, let HAProxy converge, record. It never applies an event directly.
type Reconciler struct {
	In       *Inputs
	HAProxy  HAProxy
	Log      *slog.Logger
	Resync   time.Duration // periodic full pass; 0 = never
	Observer Observer

	leaders     map[string]string // last known leader (fail static on no leader key)
	accelerated map[string]string // leader whose server was forced up (or seen at start)
	forcedDown  map[string]string // old leader already forced down
	synced      bool              // a full pass has succeeded
}

func (r *Reconciler) init() {
	if r.leaders == nil {
		r.leaders, r.accelerated, r.forcedDown = map[string]string{}, map[string]string{}, map[string]string{}
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
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.In.Wake():
		case <-tick:
			r.In.MarkAll(CauseResync)
		case <-retry:
		}
		retry = nil
		passCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_, err := r.Pass(passCtx, false)
		cancel()
		if err != nil {
			d := backoff.next()
			r.Log.Error("reconcile failed, what it could not apply is left as it is in HAProxy; retrying", "err", err, "retry_in", d)
			retry = time.After(d)
			continue
		}
		backoff.reset()
	}
}

// Pass reconciles the dirty clusters once. On error the dirty marks are put
// back so the next pass (after backoff) retries them.
func (r *Reconciler) Pass(ctx context.Context, dryRun bool) (Report, error) {
	r.init()
	start := time.Now()
	w := r.In.take()
	if !w.ready || len(w.clusters) == 0 {
		return Report{}, nil
	}
	desired, accel, broken, err := r.desired(w)
	var rep Report
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
		if err == nil && len(broken) > 0 {
			source = "inventory"
			err = brokenError(broken)
		}
	}
	if r.Observer != nil {
		r.Observer.Pass(PassInfo{Duration: time.Since(start), Full: w.full, Revision: w.revision, Causes: w.causes, Report: rep, Err: err, Source: source, DryRun: dryRun})
	}
	if dryRun {
		return rep, err
	}
	// What was applied is logged even when the pass failed part-way.
	r.logReport(w, rep)
	if err != nil {
		r.remark(w)
		return rep, err
	}
	r.record(accel)
	if w.full && !r.synced {
		r.synced = true
		r.Log.Info("HAProxy in sync", "etcd_revision", w.revision, "services", len(desired))
	}
	return rep, nil
}

// desired computes the dirty clusters' services and acceleration hints.
// A cluster whose services cannot be computed (a selector failing on live
// data, say) is left out whole and returned in broken: its HAProxy services
// stay as they are while the other clusters are reconciled. An error that
// is not one cluster's (two clusters binding one port) fails the pass.
func (r *Reconciler) desired(w work) ([]Service, map[string]Accel, map[string]error, error) {
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
			return nil, nil, nil, err
		}
		if d, err = Compute(good, live, sameNode); err != nil {
			return nil, nil, nil, err
		}
	}
	if r.Observer != nil {
		r.Observer.Desired(d.Services)
	}
	accel := map[string]Accel{}
	for _, c := range w.clusters {
		if broken[c.Name] != nil {
			continue
		}
		if a, ok := r.accelFor(c, raw[c.Name]); ok {
			accel[c.Name] = a
		}
	}
	return d.Services, accel, broken, nil
}

// brokenError names the clusters a pass left alone, and why.
func brokenError(broken map[string]error) error {
	names := make([]string, 0, len(broken))
	for n := range broken {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, 0, len(names))
	for _, n := range names {
		errs = append(errs, fmt.Errorf("cluster %s left as it is: %w", n, broken[n]))
	}
	return errors.Join(errs...)
}

// accelFor decides failover acceleration edge-triggered: once per leader
// change, never on a resync, so checks stay in charge in steady state.
func (r *Reconciler) accelFor(c *selector.Cluster, dc *dcs.Cluster) (Accel, bool) {
	if dc == nil {
		return Accel{}, false
	}
	prev, seen := r.accelerated[c.Name]
	if !seen {
		r.accelerated[c.Name] = dc.Leader // first sight: nothing to accelerate
		return Accel{}, false
	}
	var a Accel
	if prev != "" && r.forcedDown[c.Name] != prev && prev != dc.Leader && demoted(prev, dc) {
		a.Down = []string{prev}
	}
	if dc.Leader != "" && dc.Leader != prev {
		// Patroni's /primary answers 200 as soon as a member holds the leader
		// key, so forcing it up then is what HAProxy's check will conclude
		// anyway, minus rise x fastinter. Its PostgreSQL may still be
		// promoting: clients see the same read-only errors they would see
		// connecting directly.
		if m, ok := dc.Members[dc.Leader]; ok && m.State == "running" {
			a.Up = dc.Leader
		}
	}
	return a, len(a.Down) > 0 || a.Up != ""
}

// demoted reports whether the old leader has visibly stopped being primary:
// another member holds the leader key, or its own key says it stopped,
// demoted or is gone.
func demoted(prev string, dc *dcs.Cluster) bool {
	if dc.Leader != "" && dc.Leader != prev {
		return true
	}
	m, ok := dc.Members[prev]
	return dc.Leader == "" && (!ok || !dcs.IsPrimaryRole(m.Role) || m.State != "running")
}

func (r *Reconciler) record(accel map[string]Accel) {
	for c, a := range accel {
		if len(a.Down) > 0 {
			r.forcedDown[c] = a.Down[0]
		}
		if a.Up != "" {
			r.accelerated[c] = a.Up
		}
	}
}

func (r *Reconciler) remark(w work) {
	r.In.mu.Lock()
	defer r.In.mu.Unlock()
	if w.full {
		r.In.markAll(CauseResync)
		return
	}
	for c, cause := range w.causes {
		r.In.mark(c, cause)
	}
}

func (r *Reconciler) logReport(w work, rep Report) {
	for _, c := range rep.Commands {
		cluster := clusterOfService(w, c.Service)
		r.Log.Info("applied", "service", c.Service, "server", c.Server, "kind", c.Kind,
			"before", c.From, "after", c.To, "cause", string(w.causes[cluster]), "command", c.Line, "etcd_revision", w.revision)
	}
	if len(rep.Written)+len(rep.Removed) > 0 {
		r.Log.Info("config files updated", "written", rep.Written, "removed", rep.Removed, "reload", rep.Reloaded, "reasons", rep.Reload)
	}
}

func clusterOfService(w work, service string) string {
	for _, c := range w.clusters {
		for _, s := range c.Services {
			if s.FullName() == service {
				return c.Name
			}
		}
	}
	return ""
}

// ErrNotReady is returned by one-shot passes when a source is missing.
var ErrNotReady = errors.New("sources not ready: no inventory or no etcd state")

type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

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
