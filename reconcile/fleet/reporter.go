package fleet

import (
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
)

// Reporter builds this daemon's Agent from what the loop does (it is a
// reconcile.Observer) and hands the latest one to a Publisher.
type Reporter struct {
	Node, Version string
	// Scope names the clusters this daemon serves (the inventory's
	// current scope).
	Scope func() []string
	// Ready is the daemon's readiness with its reason, as /readyz reports
	// it (metrics.Metrics.Ready): the record carries it, read at each
	// publication. Observing a pass after the metrics keeps the two in
	// step; Refresh publishes a change that came from outside a pass.
	Ready func() (bool, string)

	mu      sync.Mutex
	agent   Agent
	drained map[string]map[string][]DrainedSlot // cluster → instance → its slots in HAProxy
	out     chan Agent
}

// DrainedSlot is one HAProxy server of a drained instance.
type DrainedSlot struct{ Backend, Server string }

// NewReporter starts the record; Updates is what a Publisher reads.
func NewReporter(node, version string, scope func() []string, ready func() (bool, string)) *Reporter {
	return &Reporter{Node: node, Version: version, Scope: scope, Ready: ready, out: make(chan Agent, 1),
		agent: Agent{Node: node, Version: version, Applied: map[string]int64{}, Started: time.Now().UTC().Truncate(time.Second)}}
}

// Updates delivers the latest record (older ones are dropped).
func (r *Reporter) Updates() <-chan Agent { return r.out }

// Pass implements reconcile.Observer.
func (r *Reporter) Pass(p reconcile.PassInfo) {
	if p.DryRun {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.Applied != nil {
		r.agent.Applied = p.Applied
	}
	if p.Fenced != nil {
		r.agent.Fenced = p.Fenced
	}
	r.agent.Armed = p.Armed
	r.holdEvents(p.Holds)
	r.publish()
}

// Refresh publishes the record again after a change of readiness outside
// a pass (the etcd watch lost or current again, an inventory rejected or
// loaded); the Publisher writes it only when it changed.
func (r *Reporter) Refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publish()
}

// Desired implements reconcile.Observer: it learns the drained instances'
// slots (a primary kept in the primary services included: its sessions
// there are not gone) of the pass's clusters (a keyed pass computes only its own; the
// others keep theirs).
func (r *Reporter) Desired(services []reconcile.Service) {
	d := map[string]map[string][]DrainedSlot{}
	for _, svc := range services {
		if d[svc.Cluster] == nil {
			d[svc.Cluster] = map[string][]DrainedSlot{}
		}
		for _, sv := range svc.Servers {
			if sv.Drained || sv.DrainKept {
				for _, backup := range []bool{false, true} {
					d[svc.Cluster][sv.Name] = append(d[svc.Cluster][sv.Name], DrainedSlot{Backend: svc.Name, Server: dataplaneapi.SlotName(sv.Name, backup)})
				}
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.drained == nil {
		r.drained = map[string]map[string][]DrainedSlot{}
	}
	maps.Copy(r.drained, d)
}

// HoldsReleased implements reconcile.HoldObserver.
func (r *Reporter) HoldsReleased(ended []reconcile.HoldEvent, _ reconcile.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holdEvents(ended)
	r.publish()
}

func (r *Reporter) holdEvents(evs []reconcile.HoldEvent) {
	for _, ev := range evs {
		i := slices.Index(r.agent.Holds, ev.Cluster)
		switch {
		case ev.Started && i < 0:
			r.agent.Holds = append(slices.Clone(r.agent.Holds), ev.Cluster)
			sort.Strings(r.agent.Holds)
		case !ev.Started && i >= 0:
			r.agent.Holds = slices.Delete(slices.Clone(r.agent.Holds), i, i+1)
		}
	}
}

// DrainedSlots is what the sampler reads sessions of: every drained
// instance of the clusters this agent serves.
func (r *Reporter) DrainedSlots() map[string][]DrainedSlot {
	scope := r.Scope()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]DrainedSlot{}
	for _, c := range scope {
		maps.Copy(out, r.drained[c])
	}
	return out
}

// Sample records what the sampler read from HAProxy: its version and the
// sessions on each drained instance's slots.
func (r *Reporter) Sample(haproxyVersion string, draining map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.agent.HAProxy = haproxyVersion
	if len(draining) == 0 {
		draining = nil
	}
	r.agent.Draining = draining
	r.publish()
}

// publish hands on a copy; the caller holds r.mu.
func (r *Reporter) publish() {
	a := r.agent
	a.Clusters = r.Scope()
	a.Ready, a.Reason = r.Ready()
	if a.Ready {
		a.Reason = ""
	} else {
		a.Reason = shorten(a.Reason)
	}
	applied := make(map[string]int64, len(a.Clusters))
	for _, c := range a.Clusters {
		if rev, ok := a.Applied[c]; ok {
			applied[c] = rev
		}
	}
	a.Applied = applied
	fenced := map[string]reconcile.Fence{}
	for _, c := range a.Clusters {
		if f, ok := a.Fenced[c]; ok {
			fenced[c] = f
		}
	}
	a.Fenced = fenced
	a.Holds = slices.Clone(a.Holds)
	a.Armed = slices.DeleteFunc(slices.Clone(a.Armed), func(c string) bool { return !slices.Contains(a.Clusters, c) })
	a.Draining = maps.Clone(a.Draining)
	select {
	case <-r.out: // drop the older one
	default:
	}
	r.out <- a
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
