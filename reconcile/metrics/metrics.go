// Package metrics exposes what the reconciler does as Prometheus metrics and
// serves /metrics, /healthz and /readyz.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Error sources.
const (
	SourceEtcd      = "etcd"
	SourceInventory = "inventory"
	SourceHAProxy   = "haproxy"
)

// Metrics is the reconciler's Observer and the sources' error sink. It owns
// its registry: no package-level state.
type Metrics struct {
	Registry *prometheus.Registry

	passes      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	commands    *prometheus.CounterVec
	reloads     prometheus.Counter
	reasons     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	revision    prometheus.Gauge
	drift       prometheus.Gauge
	repairs     prometheus.Counter
	members     *prometheus.GaugeVec
	etcdUp      prometheus.Gauge
	inventoryOK prometheus.Gauge
	clusterErrs *prometheus.CounterVec
	failing     *prometheus.GaugeVec
	holds       *prometheus.CounterVec
	held        prometheus.Histogram
	heldConns   prometheus.Counter
	applied     *prometheus.GaugeVec
	registered  prometheus.Gauge
	registerErr prometheus.Counter

	mu         sync.Mutex
	lastSync   time.Time
	etcdReady  bool
	invErr     error            // why the last inventory load was rejected (nil: valid)
	haproxyErr error            // the last pass failed talking to HAProxy
	clusterErr map[string]error // clusters whose last pass failed alone
	services   map[string]bool  // services with member series
	computed   map[string]bool  // services of the pass in flight
}

// New registers every metric on a fresh registry.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), services: map[string]bool{}, computed: map[string]bool{},
		clusterErr: map[string]error{}}
	f := func(c prometheus.Collector) { m.Registry.MustRegister(c) }
	m.passes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgsvc_reconcile_passes_total",
		Help: "Reconcile passes by result (ok, error) and scope (full, keyed)."}, []string{"result", "scope"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgsvc_reconcile_duration_seconds",
		Help: "Duration of reconcile passes.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"scope"})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgsvc_runtime_commands_total",
		Help: "HAProxy runtime commands applied, by kind (state, weight, addr, check-port, health, shutdown)."}, []string{"kind"})
	m.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "pgsvc_haproxy_reloads_total",
		Help: "Graceful HAProxy reloads pgsvc caused."})
	m.reasons = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgsvc_haproxy_reload_reasons_total",
		Help: "Why reloads happened: each reload counts once per reason it had (service-added, service-removed, service-changed, runtime-mismatch)."}, []string{"reason"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgsvc_errors_total",
		Help: "Errors by source (etcd, inventory, haproxy). HAProxy is left as it is on every one."}, []string{"source"})
	m.revision = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgsvc_etcd_revision", Help: "Last etcd revision included in a successful pass."})
	m.drift = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgsvc_drift_servers",
		Help: "Differences the last periodic resync found between HAProxy and the desired state without any input change (edited by hand, lost by HAProxy, a reload that failed or never happened): each server it changed at runtime, plus each structural difference it reported as a reload reason (a service missing or changed beyond runtime settings, HAProxy running another config fingerprint), whether or not the resync succeeded (not set when HAProxy could not be reached); servers whose commands HAProxy refused are in pgsvc_cluster_failing instead. 0 when HAProxy matched."})
	m.repairs = prometheus.NewCounter(prometheus.CounterOpts{Name: "pgsvc_resync_repairs_total",
		Help: "Servers a periodic resync found differing from desired (changed by hand, lost by HAProxy) and repaired."})
	m.members = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgsvc_service_members",
		Help: "Desired servers per service and slot (active, backup)."}, []string{"service", "slot"})
	m.etcdUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgsvc_etcd_connected", Help: "1 while the etcd watch is current."})
	m.inventoryOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgsvc_inventory_valid", Help: "1 when the last inventory read was valid (0: the last good one is in force)."})
	m.clusterErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgsvc_cluster_errors_total",
		Help: "Passes in which a cluster failed alone (HAProxy refused one of its commands, or its desired state could not be computed); its HAProxy services were left as they were while the other clusters converged."}, []string{"cluster"})
	m.failing = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgsvc_cluster_failing",
		Help: "1 while a cluster's last pass failed (see pgsvc_cluster_errors_total and /readyz), 0 once it converged."}, []string{"cluster"})
	m.holds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgsvc_holds_total",
		Help: "Switchover holds of new connections, by how they ended: released (new primary), aborted, leaderless, hold_max, reload (worker lost), off."}, []string{"result"})
	m.held = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pgsvc_hold_seconds",
		Help: "How long new connections were held through a switchover.", Buckets: []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 10}})
	m.heldConns = prometheus.NewCounter(prometheus.CounterOpts{Name: "pgsvc_held_connections_released_total",
		Help: "Connections waiting in the primary services' accept queues when a hold released them (the clients that waited, from the kernel's socket table: HAProxy has not accepted them yet)."})
	m.applied = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgsvc_applied_revision",
		Help: "Per cluster, the etcd revision whose state this HAProxy shows (read back); a cluster whose value stops following pgsvc_etcd_revision is stuck (see pgsvc status --fleet)."}, []string{"cluster"})
	m.registered = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgsvc_agent_registered",
		Help: "1 while this agent's fleet record (under agents_prefix) is in etcd as last written; 0 before the first write and while etcd refuses it: set --wait, drain --wait, fence and status --fleet do not see this agent then. Not part of /readyz (HAProxy is served all the same)."})
	m.registerErr = prometheus.NewCounter(prometheus.CounterOpts{Name: "pgsvc_agent_registration_errors_total",
		Help: "Failed attempts to write this agent's fleet record to etcd (lease refused, write refused, lease lost); each is retried a second later."})
	since := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgsvc_seconds_since_last_sync",
		Help: "Seconds since the last successful pass (-1 before the first)."}, m.sinceSync)
	for _, c := range []prometheus.Collector{m.passes, m.duration, m.commands, m.reloads, m.reasons, m.errors, m.revision,
		m.drift, m.repairs, m.members, m.etcdUp, m.inventoryOK, m.clusterErrs, m.failing, m.holds, m.held, m.heldConns, m.applied, m.registered, m.registerErr, since} {
		f(c)
	}
	// Every series exists from the start, at 0, so a scrape shows them all.
	for _, s := range []string{SourceEtcd, SourceInventory, SourceHAProxy} {
		m.errors.WithLabelValues(s)
	}
	for _, r := range []string{"released", "aborted", "leaderless", "hold_max", "reload", "off", "shutdown"} {
		m.holds.WithLabelValues(r)
	}
	for _, k := range []string{"state", "weight", "addr", "check-port", "health", "shutdown", "hold", "release"} {
		m.commands.WithLabelValues(k)
	}
	for _, r := range []string{"service-added", "service-removed", "service-changed", "runtime-mismatch"} {
		m.reasons.WithLabelValues(r)
	}
	for _, result := range []string{"ok", "error"} {
		for _, scope := range []string{"full", "keyed"} {
			m.passes.WithLabelValues(result, scope)
		}
	}
	m.inventoryOK.Set(1)
	return m
}

func (m *Metrics) sinceSync() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastSync.IsZero() {
		return -1
	}
	return time.Since(m.lastSync).Seconds()
}

// HoldsReleased implements reconcile.HoldObserver: holds released outside
// a pass (hold_max, shutdown, an earlier pgsvc's left at start-up).
func (m *Metrics) HoldsReleased(ended []reconcile.HoldEvent, rep reconcile.Report) {
	m.countApplied(ended, rep)
}

// countApplied counts ended holds and applied commands; it returns the
// servers the commands touched.
func (m *Metrics) countApplied(holds []reconcile.HoldEvent, rep reconcile.Report) map[string]bool {
	for _, h := range holds {
		if !h.Started {
			m.holds.WithLabelValues(h.Result).Inc()
			m.held.Observe(h.Held.Seconds())
		}
	}
	for _, n := range rep.Released {
		m.heldConns.Add(float64(n))
	}
	servers := map[string]bool{}
	for _, c := range rep.Commands {
		m.commands.WithLabelValues(c.Kind).Inc()
		servers[c.Service+"/"+c.Server] = true
	}
	return servers
}

// Pass records one reconcile pass (reconcile.Observer).
func (m *Metrics) Pass(p reconcile.PassInfo) {
	if p.DryRun {
		m.mu.Lock()
		m.computed = map[string]bool{}
		m.mu.Unlock()
		return
	}
	scope := "keyed"
	if p.Full {
		scope = "full"
	}
	m.duration.WithLabelValues(scope).Observe(p.Duration.Seconds())
	servers := m.countApplied(p.Holds, p.Report)
	for c, rev := range p.Applied {
		m.applied.WithLabelValues(c).Set(float64(rev))
	}
	if p.Report.Reloaded {
		m.reloads.Inc()
		seen := map[string]bool{}
		for _, r := range p.Report.Reload {
			if reason := reloadReason(r); !seen[reason] {
				seen[reason] = true
				m.reasons.WithLabelValues(reason).Inc()
			}
		}
	}
	if resync(p.Causes) && readHAProxy(p) {
		// A failed resync found differences too (a reload it could not
		// make, or would not repeat): the gauge follows what it saw.
		m.repairs.Add(float64(len(servers)))
		m.drift.Set(float64(len(servers) + len(distinct(p.Report.Reload))))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	computed := m.computed
	m.computed = map[string]bool{}
	m.recordClusters(p)
	if p.Err != nil {
		m.passes.WithLabelValues("error", scope).Inc()
		m.errors.WithLabelValues(p.Source).Inc()
		if p.Source == SourceHAProxy {
			m.haproxyErr = p.Err
		}
		return
	}
	m.haproxyErr = nil
	m.passes.WithLabelValues("ok", scope).Inc()
	if p.Full {
		// Services gone from the desired state lose their series.
		for name := range m.services {
			if !computed[name] {
				m.members.DeleteLabelValues(name, "active")
				m.members.DeleteLabelValues(name, "backup")
				delete(m.services, name)
			}
		}
	}
	m.revision.Set(float64(p.Revision))
	m.lastSync = time.Now()
}

// recordClusters keeps each cluster of the pass failing or not. A pass
// whose desired state could not be computed at all fails every cluster it
// covered (each is left as it is in HAProxy); one that failed talking to
// HAProxy (unreachable) says nothing per cluster.
func (m *Metrics) recordClusters(p reconcile.PassInfo) {
	if p.Err != nil {
		if p.Source == SourceInventory {
			for c := range p.Causes {
				m.failCluster(c, p.Err)
			}
		}
		return
	}
	if p.Full {
		// A full pass covers every cluster in scope: one it does not name
		// has left the inventory (or this HAProxy) and fails no more.
		for c := range m.clusterErr {
			if _, ok := p.Causes[c]; !ok {
				delete(m.clusterErr, c)
				m.failing.DeleteLabelValues(c)
				m.clusterErrs.DeleteLabelValues(c)
			}
		}
	}
	for c := range p.Causes {
		if err := p.ClusterErrors[c]; err != nil {
			m.failCluster(c, err)
			continue
		}
		delete(m.clusterErr, c)
		m.clusterErrs.WithLabelValues(c)
		m.failing.WithLabelValues(c).Set(0)
	}
}

func (m *Metrics) failCluster(c string, err error) {
	m.clusterErr[c] = err
	m.clusterErrs.WithLabelValues(c).Inc()
	m.failing.WithLabelValues(c).Set(1)
}

// failingClusters names the failing clusters and their errors, sorted.
func (m *Metrics) failingClusters() string {
	names := make([]string, 0, len(m.clusterErr))
	for c := range m.clusterErr {
		names = append(names, c)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, c := range names {
		parts[i] = fmt.Sprintf("cluster %s: %v", c, m.clusterErr[c])
	}
	return strings.Join(parts, "; ")
}

// readHAProxy reports whether a pass compared HAProxy with the desired
// state: its desired state was computed and HAProxy answered.
func readHAProxy(p reconcile.PassInfo) bool {
	var unreachable *reconcile.UnreachableError
	return p.Err == nil || p.Source == SourceHAProxy && !errors.As(p.Err, &unreachable)
}

func distinct(items []string) map[string]bool {
	set := make(map[string]bool, len(items))
	for _, it := range items {
		set[it] = true
	}
	return set
}

func resync(causes map[string]reconcile.Cause) bool {
	for _, c := range causes {
		if c != reconcile.CauseResync {
			return false
		}
	}
	return len(causes) > 0
}

// Desired records the desired membership of the services just computed.
func (m *Metrics) Desired(services []reconcile.Service) {
	for _, s := range services {
		active, backup := 0, 0
		for _, sv := range s.Servers {
			switch sv.Slot {
			case reconcile.Active:
				active++
			case reconcile.Backup:
				backup++
			}
		}
		m.members.WithLabelValues(s.Name, "active").Set(float64(active))
		m.members.WithLabelValues(s.Name, "backup").Set(float64(backup))
		m.mu.Lock()
		m.services[s.Name], m.computed[s.Name] = true, true
		m.mu.Unlock()
	}
}

// EtcdReady records the etcd watch's state.
func (m *Metrics) EtcdReady(ready bool) {
	m.mu.Lock()
	m.etcdReady = ready
	m.mu.Unlock()
	if ready {
		m.etcdUp.Set(1)
	} else {
		m.etcdUp.Set(0)
	}
}

// EtcdError counts an etcd failure (lost watch, malformed value).
func (m *Metrics) EtcdError(error) { m.errors.WithLabelValues(SourceEtcd).Inc() }

// Inventory records the result of an inventory load; Ready reports a
// rejected one with its error until a load succeeds.
func (m *Metrics) Inventory(err error) {
	m.mu.Lock()
	m.invErr = err
	m.mu.Unlock()
	if err != nil {
		m.errors.WithLabelValues(SourceInventory).Inc()
		m.inventoryOK.Set(0)
		return
	}
	m.inventoryOK.Set(1)
}

// AgentRegistered records the outcome of a write of this agent's fleet
// record (fleet.Publisher.Registered). It does not change Ready: an agent
// that applies but cannot register still serves HAProxy as it should;
// what it loses is being seen (and waited for) by the fleet commands.
func (m *Metrics) AgentRegistered(err error) {
	if err != nil {
		m.registerErr.Inc()
		m.registered.Set(0)
		return
	}
	m.registered.Set(1)
}

// Ready reports whether pgsvc has synced at least once and its sources are
// healthy; before the first successful pass the reason says what stands in
// its way, when something does.
func (m *Metrics) Ready() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	why := m.unready()
	switch {
	case m.lastSync.IsZero() && why != "":
		return false, "not synced yet: " + why
	case m.lastSync.IsZero():
		return false, "not synced yet"
	case why != "":
		return false, why
	}
	return true, "ok"
}

// unready is the first reason pgsvc is not ready, "" when none; the
// caller holds m.mu.
func (m *Metrics) unready() string {
	switch {
	case !m.etcdReady:
		return "etcd watch not current"
	case m.invErr != nil:
		return "inventory invalid (last good one in force): " + strings.ReplaceAll(m.invErr.Error(), "\n", "; ")
	case m.haproxyErr != nil:
		return "haproxy: " + m.haproxyErr.Error()
	case len(m.clusterErr) > 0:
		return "left as they are in HAProxy (the other clusters are in sync): " + m.failingClusters()
	}
	return ""
}

func reloadReason(r string) string {
	switch {
	case strings.HasSuffix(r, " added"):
		return "service-added"
	case strings.HasSuffix(r, " removed"):
		return "service-removed"
	case strings.Contains(r, "changed"):
		return "service-changed"
	}
	return "runtime-mismatch"
}

// Serve serves /metrics, /healthz and /readyz on addr until ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := m.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(why + "\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
