package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile"
)

func service(name string, slots ...reconcile.Slot) reconcile.Service {
	s := reconcile.Service{Name: name}
	for _, sl := range slots {
		s.Servers = append(s.Servers, reconcile.Server{Slot: sl})
	}
	return s
}

func TestPassAccounting(t *testing.T) {
	m := New()
	ready, why := m.Ready()
	assert.False(t, ready)
	assert.Equal(t, "not synced yet: etcd watch not current", why)
	m.EtcdReady(true)
	ready, why = m.Ready()
	assert.False(t, ready)
	assert.Equal(t, "not synced yet", why)

	// One reload with three reasons of two kinds counts once in the total.
	m.Desired([]reconcile.Service{service("pg-a-primary", reconcile.Active), service("pg-a-replica", reconcile.Active, reconcile.Backup)})
	m.Pass(reconcile.PassInfo{Full: true, Revision: 42, Causes: map[string]reconcile.Cause{"pg-a": reconcile.CauseInventory},
		Report: reconcile.Report{Reloaded: true, Reload: []string{"service pg-a-primary added", "service pg-a-replica added", "service pg-b-x changed beyond runtime settings"},
			Commands: []reconcile.AppliedCommand{{Service: "pg-a-replica", Server: "pg-a-1", Kind: "state"}}}})
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reloads))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reasons.WithLabelValues("service-added")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.reasons.WithLabelValues("service-changed")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.commands.WithLabelValues("state")))
	assert.Equal(t, 42.0, testutil.ToFloat64(m.revision))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.drift), "changes driven by inputs are not drift")
	assert.Equal(t, 1.0, testutil.ToFloat64(m.members.WithLabelValues("pg-a-replica", "backup")))
	ready, _ = m.Ready()
	assert.True(t, ready)

	// A resync that repairs two servers is drift.
	m.Desired([]reconcile.Service{service("pg-a-replica", reconcile.Active, reconcile.Backup)})
	m.Pass(reconcile.PassInfo{Full: true, Causes: map[string]reconcile.Cause{"pg-a": reconcile.CauseResync},
		Report: reconcile.Report{Commands: []reconcile.AppliedCommand{
			{Service: "pg-a-replica", Server: "pg-a-1", Kind: "weight"}, {Service: "pg-a-replica", Server: "pg-a-2", Kind: "state"}, {Service: "pg-a-replica", Server: "pg-a-2", Kind: "health"}}}})
	assert.Equal(t, 2.0, testutil.ToFloat64(m.drift))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.repairs))
	assert.Equal(t, 2, testutil.CollectAndCount(m.members), "a service gone from a full pass loses its series (pg-a-replica's two stay)")

	// HAProxy failing makes pgsvc unready until a pass succeeds again.
	m.Pass(reconcile.PassInfo{Full: true, Err: errors.New("dial unix /run/haproxy.sock: connection refused"), Source: SourceHAProxy})
	ready, why = m.Ready()
	assert.False(t, ready)
	assert.True(t, strings.HasPrefix(why, "haproxy: dial unix"), why)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.errors.WithLabelValues(SourceHAProxy)))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.passes.WithLabelValues("error", "full")))
	m.Pass(reconcile.PassInfo{Full: true})
	ready, _ = m.Ready()
	assert.True(t, ready)
}

// Pins: pgsvc_drift_servers was set only from a successful resync's
// commands, so structural drift (HAProxy running another fingerprint, a
// missing backend) and failed resyncs left an old value, often 0.
func TestDriftServers(t *testing.T) {
	resync := map[string]reconcile.Cause{"pg-a": reconcile.CauseResync}
	repaired := []reconcile.AppliedCommand{
		{Service: "pg-a-replica", Server: "pg-a-1", Kind: "weight"}, {Service: "pg-a-replica", Server: "pg-a-2", Kind: "state"},
		{Service: "pg-a-replica", Server: "pg-a-2", Kind: "health"}}
	fingerprint := "haproxy runs config fingerprint 1a2b, the files in /etc/haproxy/conf.d say 3c4d"
	tests := []struct {
		name string
		pass reconcile.PassInfo
		want float64
	}{
		{"converged", reconcile.PassInfo{Full: true, Causes: resync}, 0},
		{"servers repaired at runtime", reconcile.PassInfo{Full: true, Causes: resync, Report: reconcile.Report{Commands: repaired}}, 2},
		{"another fingerprint, reloaded", reconcile.PassInfo{Full: true, Causes: resync,
			Report: reconcile.Report{Reloaded: true, Reload: []string{fingerprint}}}, 1},
		{"a missing backend whose reload failed, and a server repaired", reconcile.PassInfo{Full: true, Causes: resync, Source: SourceHAProxy,
			Err:    errors.New("reload haproxy for haproxy has no backend pg-a-primary: master socket: i/o timeout"),
			Report: reconcile.Report{Reload: []string{"haproxy has no backend pg-a-primary"}, Commands: repaired[:1]}}, 2},
		{"a reload not repeated (HAProxy does not load the dir)", reconcile.PassInfo{Full: true, Causes: resync, Source: SourceHAProxy,
			Err: errors.New("haproxy still does not run the files"), Report: reconcile.Report{Reload: []string{fingerprint}}}, 1},
		// Nothing was compared: the last value stays.
		{"haproxy unreachable", reconcile.PassInfo{Full: true, Causes: resync, Source: SourceHAProxy,
			Err: &reconcile.UnreachableError{Err: errors.New("dial unix /run/haproxy.sock: connection refused")}}, 7},
		{"desired state not computed", reconcile.PassInfo{Full: true, Causes: resync, Source: SourceInventory, Err: errors.New("bad selector")}, 7},
		{"not a resync", reconcile.PassInfo{Causes: map[string]reconcile.Cause{"pg-a": reconcile.CausePatroni},
			Report: reconcile.Report{Reloaded: true, Reload: []string{"service pg-a-x added"}}}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			m.drift.Set(7) // an earlier resync's
			m.Pass(tc.pass)
			assert.Equal(t, tc.want, testutil.ToFloat64(m.drift))
		})
	}
}

// Before the first successful pass, /readyz says what stands in its way
// (the fleet record carries the same reason); a pass whose desired state
// could not be computed at all fails every cluster it covered until one
// converges (/readyz used to say ok).
func TestReadyReasons(t *testing.T) {
	m := New()
	m.EtcdReady(true)
	m.Pass(reconcile.PassInfo{Full: true, Err: errors.New("dial unix /run/haproxy.sock: connection refused"), Source: SourceHAProxy})
	_, why := m.Ready()
	assert.Equal(t, "not synced yet: haproxy: dial unix /run/haproxy.sock: connection refused", why)

	m.Pass(reconcile.PassInfo{Full: true, Causes: map[string]reconcile.Cause{"pg-a": reconcile.CauseStart}})
	ready, _ := m.Ready()
	require.True(t, ready)
	m.Pass(reconcile.PassInfo{Causes: map[string]reconcile.Cause{"pg-a": reconcile.CausePatroni}, Err: errors.New("pg-a: two leaders"), Source: SourceInventory})
	ready, why = m.Ready()
	assert.False(t, ready)
	assert.Equal(t, "left as they are in HAProxy (the other clusters are in sync): cluster pg-a: pg-a: two leaders", why)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.failing.WithLabelValues("pg-a")))
	m.Pass(reconcile.PassInfo{Causes: map[string]reconcile.Cause{"pg-a": reconcile.CausePatroni}})
	ready, why = m.Ready()
	assert.True(t, ready, why)
}

// Registration is a metric, not readiness: an agent that applies but
// cannot write its fleet record still serves HAProxy as it should.
func TestAgentRegistered(t *testing.T) {
	m := New()
	m.EtcdReady(true)
	m.Pass(reconcile.PassInfo{Full: true})
	assert.Equal(t, 0.0, testutil.ToFloat64(m.registered), "not registered before the first write")
	m.AgentRegistered(errors.New("put agent record /pgsvc/agents/n1: etcdserver: permission denied"))
	m.AgentRegistered(errors.New("put agent record /pgsvc/agents/n1: etcdserver: permission denied"))
	assert.Equal(t, 0.0, testutil.ToFloat64(m.registered))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.registerErr))
	ready, why := m.Ready()
	assert.True(t, ready, "unregistered but serving: %s", why)
	m.AgentRegistered(nil)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.registered))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.registerErr))
}
