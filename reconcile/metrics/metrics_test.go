package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"

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
	assert.Equal(t, "not synced yet", why)
	m.EtcdReady(true)

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
