package reconcile

import (
	"sync"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// Cause says why a cluster needs reconciling; it ends up in every log line
// of the changes it leads to.
type Cause string

// Causes of a reconcile.
const (
	CauseLeader    Cause = "leader-change"   // a cluster's leader key changed
	CausePatroni   Cause = "patroni"         // a Patroni member key changed (role, state, tags)
	CauseOverride  Cause = "override"        // an operator override changed
	CauseInventory Cause = "inventory"       // the inventory file changed
	CauseResync    Cause = "resync"          // periodic check of HAProxy against desired
	CauseStart     Cause = "start"           // first pass, or sources back after an outage
	CauseHAProxy   Cause = "haproxy-restart" // HAProxy's worker changed behind pgsvc's back
	CauseHold      Cause = "switchover-hold" // a hold's time limit, a scheduled switchover's time, Patroni's before_stop
)

// Inputs is the shared, lock-guarded input of the reconciler: the model from
// the inventory and the live state from etcd. Sources update it and mark the
// affected clusters dirty; the loop is woken through a one-slot channel so
// bursts coalesce into one pass.
type Inputs struct {
	mu        sync.Mutex
	model     *selector.Model
	scope     []*selector.Cluster
	node      string
	names     []string
	state     *dcs.State
	etcdReady bool // an initial list has been read and the watch runs
	dirty     map[string]Cause
	all       Cause // non-empty: every cluster is dirty
	wake      chan struct{}
	revision  int64
}

// NewInputs starts with no model and no etcd state: nothing is applied until
// both arrive (fail static).
func NewInputs(node string, clusters []string) *Inputs {
	return &Inputs{node: node, names: clusters, state: dcs.NewState(), dirty: map[string]Cause{}, wake: make(chan struct{}, 1)}
}

// Wake is the channel the loop waits on.
func (in *Inputs) Wake() <-chan struct{} { return in.wake }

func (in *Inputs) notify() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// SetModel installs a validated model. Its scope (the clusters this HAProxy
// carries) is checked first: a model whose scope is invalid is refused and
// the last good one stays.
func (in *Inputs) SetModel(m *selector.Model) error {
	scope, err := m.Select(in.node, in.names)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.model, in.scope = m, scope
	in.markAll(CauseInventory)
	return nil
}

// ReplaceState installs a freshly listed etcd state (start, or after a lost
// watch): everything is re-evaluated.
func (in *Inputs) ReplaceState(st *dcs.State) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.state = st
	in.revision = st.Revision
	in.etcdReady = true
	in.markAll(CauseStart)
}

// Update applies watched etcd changes under the lock; update returns the
// clusters it touched (with why) and the instances whose overrides changed.
func (in *Inputs) Update(rev int64, update func(st *dcs.State) (clusters map[string]Cause, instances []string)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	clusters, instances := update(in.state)
	if rev > in.revision {
		in.revision = rev
		in.state.Revision = rev
	}
	for c, cause := range clusters {
		in.mark(c, cause)
	}
	for _, inst := range instances {
		in.markInstance(inst)
	}
	in.notify()
}

// SetEtcdReady records whether the etcd view is current. Going unready stops
// applying (HAProxy stays as it is); coming back re-evaluates everything.
func (in *Inputs) SetEtcdReady(ready bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if ready && !in.etcdReady {
		in.markAll(CauseStart)
	}
	in.etcdReady = ready
}

// MarkAll asks for a pass over every cluster.
func (in *Inputs) MarkAll(c Cause) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.markAll(c)
}

func (in *Inputs) markAll(c Cause) {
	if in.all == "" || c == CauseStart || c == CauseHAProxy {
		in.all = c
	}
	in.notify()
}

// Mark marks one cluster for a pass and wakes the loop.
func (in *Inputs) Mark(cluster string, c Cause) {
	in.mu.Lock()
	in.mark(cluster, c)
	in.notify()
	in.mu.Unlock()
}

func (in *Inputs) mark(cluster string, c Cause) {
	if old, ok := in.dirty[cluster]; !ok || c == CauseLeader && old != CauseLeader {
		in.dirty[cluster] = c // a leader change is the cause worth reporting
	}
}

// markInstance marks the cluster an override's instance belongs to; an
// instance the model does not know marks nothing.
func (in *Inputs) markInstance(inst string) {
	if in.model == nil {
		return
	}
	for _, c := range in.scope {
		for _, h := range c.Members {
			if selector.InstanceName(c.Name, selector.Seq(h.Vars)) == inst {
				in.mark(c.Name, CauseOverride)
				return
			}
		}
	}
}

// pendingAll is the cause every cluster is marked for ("" when none).
func (in *Inputs) pendingAll() Cause {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.all
}

// remark puts a failed pass's marks back without waking the loop: the
// loop's backoff decides when they are taken again.
func (in *Inputs) remark(w work) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for c, cause := range w.causes {
		in.mark(c, cause)
	}
	if w.full && in.all == "" {
		in.all = CauseResync
	}
}

// work is one pass's input, taken under the lock.
type work struct {
	ready    bool
	full     bool
	causes   map[string]Cause // dirty clusters in scope
	clusters []*selector.Cluster
	revision int64
}

// take removes and returns the dirty set. Nothing is taken while a source
// is not ready, so the marks wait for it.
func (in *Inputs) take() work {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.model == nil || !in.etcdReady {
		return work{}
	}
	w := work{ready: true, full: in.all != "", causes: map[string]Cause{}, revision: in.revision}
	for _, c := range in.scope {
		cause, dirty := in.dirty[c.Name]
		if in.all != "" {
			cause, dirty = in.all, true
		}
		if dirty {
			w.causes[c.Name] = cause
			w.clusters = append(w.clusters, c)
		}
	}
	in.dirty = map[string]Cause{}
	in.all = ""
	return w
}

// live returns the live view of the given clusters; lastLeader keeps the
// last known leader per cluster (no leader key: routing stays, see
// dcs.RoutingLeader).
func (in *Inputs) live(clusters []*selector.Cluster, lastLeader map[string]string) (Live, map[string]*dcs.Cluster) {
	in.mu.Lock()
	defer in.mu.Unlock()
	l := Live{Clusters: map[string]selector.ClusterLive{}, Overrides: selector.Overrides{}}
	raw := map[string]*dcs.Cluster{}
	for _, c := range clusters {
		dc := in.state.Clusters[c.Name]
		if dc == nil {
			continue
		}
		leader := dcs.RoutingLeader(c.Name, dc, lastLeader)
		members := make(map[string]selector.Member, len(dc.Members))
		for k, v := range dc.Members {
			members[k] = v
		}
		l.Clusters[c.Name] = selector.ClusterLive{Leader: leader, Members: members}
		raw[c.Name] = dc.Clone()
	}
	for k, v := range in.state.Overrides {
		l.Overrides[k] = v
	}
	return l, raw
}

// Status reports the inputs' health for readiness and metrics.
func (in *Inputs) Status() (modelLoaded, etcdReady bool, revision int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.model != nil, in.etcdReady, in.revision
}

// Model returns the model in force and the clusters in scope.
func (in *Inputs) Model() (*selector.Model, []*selector.Cluster) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.model, in.scope
}
