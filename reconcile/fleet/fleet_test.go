package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, value, err string
	}{
		{"record", `{"node":"n1","clusters":["pg-test"],"applied":{"pg-test":7},"ready":true}`, ""},
		{"not JSON", `node n1`, "not a pgsvc agent record"},
		{"no node", `{"clusters":["pg-test"]}`, "agent record has no node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse([]byte(tc.value))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.True(t, a.Serves("pg-test"))
			assert.False(t, a.Serves("pg-other"))
			assert.Equal(t, int64(7), a.Applied["pg-test"])
		})
	}
}

// The reporter publishes what the loop did: applied revisions of the
// clusters it serves only, holds as they start and end; a dry run changes
// nothing.
func TestReporter(t *testing.T) {
	r := NewReporter("n1", "v1", func() []string { return []string{"pg-a"} }, func() (bool, string) { return true, "ok" })
	r.Pass(reconcile.PassInfo{Applied: map[string]int64{"pg-a": 5, "pg-gone": 9},
		Holds: []reconcile.HoldEvent{{Cluster: "pg-a", Started: true}}})
	a := <-r.Updates()
	assert.Equal(t, map[string]int64{"pg-a": 5}, a.Applied, "only the clusters it serves")
	assert.True(t, a.Ready)
	assert.Empty(t, a.Reason, "ready: no reason")
	assert.Equal(t, []string{"pg-a"}, a.Holds)

	r.Pass(reconcile.PassInfo{DryRun: true, Err: errors.New("ignored")})
	select {
	case a := <-r.Updates():
		t.Fatalf("a dry run published %+v", a)
	default:
	}
	r.Pass(reconcile.PassInfo{Applied: map[string]int64{"pg-a": 6}})
	r.HoldsReleased([]reconcile.HoldEvent{{Cluster: "pg-a", Result: "hold_max"}}, reconcile.Report{})
	a = <-r.Updates() // the latest only
	assert.Empty(t, a.Holds, "the hold ended")
	assert.Equal(t, int64(6), a.Applied["pg-a"])
}

// The record's readiness is /readyz's, step by step: the record published
// before the first pass says why it is not ready (it used to say "no: "
// with no reason), and a lost etcd watch, a rejected inventory or a pass
// whose desired state could not be computed make it not ready (they used
// to leave it "ready", only pass errors counted).
func TestReporterReadinessIsReadyz(t *testing.T) {
	m := metrics.New()
	r := NewReporter("n1", "v1", func() []string { return []string{"pg-a"} }, m.Ready)
	pass := func(p reconcile.PassInfo) {
		p.Causes = map[string]reconcile.Cause{"pg-a": reconcile.CausePatroni}
		m.Pass(p) // the daemon's order: metrics first
		r.Pass(p)
	}
	for _, step := range []struct {
		name, reason string
		do           func()
	}{
		{"before the first pass", "not synced yet: etcd watch not current", func() { r.Sample("3.0.11", nil) }},
		{"etcd current, no pass yet", "not synced yet", func() { m.EtcdReady(true); r.Refresh() }},
		{"first pass", "", func() { pass(reconcile.PassInfo{Applied: map[string]int64{"pg-a": 5}}) }},
		{"inventory rejected", "inventory invalid (last good one in force): inventory.yml:3: bad; selector", func() {
			m.Inventory(errors.New("inventory.yml:3: bad\nselector"))
			r.Refresh()
		}},
		{"inventory fixed, etcd watch lost", "etcd watch not current", func() { m.Inventory(nil); m.EtcdReady(false); r.Refresh() }},
		{"etcd current again", "", func() { m.EtcdReady(true); r.Refresh() }},
		{"a cluster refused", "left as they are in HAProxy (the other clusters are in sync): cluster pg-a: haproxy refused", func() {
			pass(reconcile.PassInfo{ClusterErrors: reconcile.ClusterErrors{"pg-a": errors.New("haproxy refused")}})
		}},
		{"desired state not computed", "left as they are in HAProxy (the other clusters are in sync): cluster pg-a: no leader key", func() {
			pass(reconcile.PassInfo{Err: errors.New("no leader key"), Source: metrics.SourceInventory})
		}},
		{"converged", "", func() { pass(reconcile.PassInfo{}) }},
	} {
		step.do()
		a := <-r.Updates()
		ready, why := m.Ready()
		assert.Equal(t, step.reason == "", a.Ready, step.name)
		assert.Equal(t, step.reason, a.Reason, step.name)
		assert.Equal(t, ready, a.Ready, "%s: the record agrees with /readyz", step.name)
		if !ready {
			assert.Equal(t, why, a.Reason, "%s: with /readyz's reason", step.name)
		}
	}
}

// The publisher keeps the record under the prefix on its own lease,
// rewrites it only when it changed, and revokes it on a clean stop.
func TestPublisher(t *testing.T) {
	etcd := local.StartEtcd(t)
	cli := etcd.Client()
	defer cli.Close()
	p := &Publisher{Client: cli, Prefix: DefaultPrefix, TTL: 5 * time.Second, MinInterval: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan Agent)
	stopped := make(chan struct{})
	go func() { _ = p.Run(ctx, updates); close(stopped) }()

	rec := Agent{Node: "n1", Clusters: []string{"pg-a"}, Applied: map[string]int64{"pg-a": 3}, Ready: true}
	updates <- rec
	var version int64
	require.Eventually(t, func() bool {
		agents, _, err := List(context.Background(), cli, DefaultPrefix)
		require.NoError(t, err)
		resp, err := cli.Get(context.Background(), Key(DefaultPrefix, "n1"))
		require.NoError(t, err)
		if len(resp.Kvs) == 1 {
			version = resp.Kvs[0].Version
			assert.NotZero(t, resp.Kvs[0].Lease, "on a lease")
		}
		return agents["n1"].Applied["pg-a"] == 3
	}, 10*time.Second, 20*time.Millisecond)
	updates <- rec // the same record: no write
	rec.Applied = map[string]int64{"pg-a": 4}
	updates <- rec
	require.Eventually(t, func() bool {
		agents, _, _ := List(context.Background(), cli, DefaultPrefix)
		return agents["n1"].Applied["pg-a"] == 4
	}, 10*time.Second, 20*time.Millisecond)
	resp, err := cli.Get(context.Background(), Key(DefaultPrefix, "n1"))
	require.NoError(t, err)
	assert.Equal(t, version+1, resp.Kvs[0].Version, "one write per change, none for the repeat")

	cancel()
	<-stopped
	agents, _, err := List(context.Background(), cli, DefaultPrefix)
	require.NoError(t, err)
	assert.Empty(t, agents, "revoked at once on a clean stop, not left for the TTL")
}

// A storm of changes is written at most burst + rate × time, and the last
// record always lands.
func TestPublisherRateLimit(t *testing.T) {
	etcd := local.StartEtcd(t)
	cli := etcd.Client()
	defer cli.Close()
	every := 100 * time.Millisecond
	p := &Publisher{Client: cli, Prefix: DefaultPrefix, TTL: 5 * time.Second, MinInterval: every,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := make(chan Agent)
	go func() { _ = p.Run(ctx, updates) }()
	began := time.Now()
	const n = 200
	for i := 1; i <= n; i++ {
		updates <- Agent{Node: "n1", Applied: map[string]int64{"pg-a": int64(i)}}
		time.Sleep(time.Millisecond)
	}
	require.Eventually(t, func() bool {
		agents, _, _ := List(context.Background(), cli, DefaultPrefix)
		return agents["n1"].Applied["pg-a"] == n
	}, 10*time.Second, 20*time.Millisecond, "the last record lands")
	elapsed := time.Since(began)
	resp, err := cli.Get(context.Background(), Key(DefaultPrefix, "n1"))
	require.NoError(t, err)
	limit := 3 + int64(elapsed/every) + 1
	assert.LessOrEqual(t, resp.Kvs[0].Version, limit, "%d writes for %d changes in %s", resp.Kvs[0].Version, n, elapsed)
	t.Logf("%d changes in %s: %d writes (limit %d)", n, elapsed.Round(time.Millisecond), resp.Kvs[0].Version, limit)
}

// A keyed pass of one cluster leaves the drained instances of the others
// (an agent serving several clusters keeps counting their sessions).
func TestReporterDrainedAcrossKeyedPasses(t *testing.T) {
	r := NewReporter("n1", "v1", func() []string { return []string{"pg-a", "pg-b"} }, func() (bool, string) { return true, "ok" })
	svc := func(cluster, server string, drained bool) reconcile.Service {
		return reconcile.Service{Name: cluster + "-replica", Cluster: cluster, Servers: []reconcile.Server{{Name: server, Drained: drained}}}
	}
	r.Desired([]reconcile.Service{svc("pg-a", "pg-a-2", true), svc("pg-b", "pg-b-1", false)})
	r.Desired([]reconcile.Service{svc("pg-b", "pg-b-1", false)}) // a keyed pass of pg-b
	assert.Equal(t, map[string][]DrainedSlot{"pg-a-2": {{"pg-a-replica", "pg-a-2"}, {"pg-a-replica", "pg-a-2.b"}}}, r.DrainedSlots())
	r.Desired([]reconcile.Service{svc("pg-a", "pg-a-2", false)}) // undrained
	assert.Empty(t, r.DrainedSlots())
}

// An acknowledgement (a hold, an armed hold, a fence) is written at once
// even when the bucket is empty: with one token an hour, the fourth
// change of applied revisions waits, a hold started meanwhile does not.
func TestPublisherWritesAcknowledgementsAtOnce(t *testing.T) {
	etcd := local.StartEtcd(t)
	cli := etcd.Client()
	defer cli.Close()
	p := &Publisher{Client: cli, Prefix: DefaultPrefix, TTL: 5 * time.Second, MinInterval: time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := make(chan Agent)
	go func() { _ = p.Run(ctx, updates) }()
	version := func() int64 {
		resp, err := cli.Get(context.Background(), Key(DefaultPrefix, "n1"))
		require.NoError(t, err)
		if len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].Version
	}
	rec := Agent{Node: "n1", Clusters: []string{"pg-a"}}
	for i := int64(1); i <= 3; i++ { // the bucket
		rec.Applied = map[string]int64{"pg-a": i}
		updates <- rec
		require.Eventually(t, func() bool { return version() == i }, 10*time.Second, 10*time.Millisecond)
	}
	rec.Applied = map[string]int64{"pg-a": 4}
	updates <- rec // no token left: waits an hour
	for _, ack := range []func(a *Agent){
		func(a *Agent) { a.Armed = []string{"pg-a"} },
		func(a *Agent) { a.Armed, a.Holds = nil, []string{"pg-a"} },
		func(a *Agent) { a.Fenced = map[string]reconcile.Fence{"pg-a": {Leader: "pg-a-2", Term: 9}} },
	} {
		ack(&rec)
		updates <- rec
		want := rec
		require.Eventually(t, func() bool {
			agents, _, _ := List(context.Background(), cli, DefaultPrefix)
			a := agents["n1"]
			return slices.Equal(a.Holds, want.Holds) && slices.Equal(a.Armed, want.Armed) && a.Fenced["pg-a"] == want.Fenced["pg-a"]
		}, 10*time.Second, 10*time.Millisecond, "the acknowledgement is written at once: %+v", want)
	}
	agents, _, err := List(context.Background(), cli, DefaultPrefix)
	require.NoError(t, err)
	assert.Equal(t, int64(4), agents["n1"].Applied["pg-a"], "with the applied revision it carries")
	assert.Equal(t, int64(6), version(), "three acknowledgements, one write each")
}

// An agent whose etcd user may not write under the agents prefix is not
// registered: Registered is told why at every attempt, the warning (once,
// not at every retry) names the etcd error and the permission it needs,
// and once the permission is granted the record lands and Registered says
// so. Pins issue 14's invisible agent: the failure used to be only logged.
func TestPublisherWithoutWritePermission(t *testing.T) {
	e := local.StartEtcdTLS(t, "pgsvc", "s3cret")
	root := e.Client()
	defer root.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Patroni's namespace read-write, the agents prefix read only.
	for i, step := range []func() error{
		func() error { _, err := root.RoleAdd(ctx, "agent"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "agent", "/pg/", clientv3.GetPrefixRangeEnd("/pg/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error {
			_, err := root.RoleGrantPermission(ctx, "agent", DefaultPrefix, clientv3.GetPrefixRangeEnd(DefaultPrefix), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := root.UserAdd(ctx, "agent", "agentpw"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "agent", "agent"); return err },
	} {
		require.NoError(t, step(), "etcd auth step %d", i)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, TLS: e.TLS.Config, Username: "agent", Password: "agentpw",
		DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	logs := &local.LogBuffer{}
	outcomes := make(chan error, 100) // one attempt a second: never full
	p := &Publisher{Client: cli, Prefix: DefaultPrefix, TTL: 5 * time.Second, MinInterval: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil)), Registered: func(err error) { outcomes <- err }}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	updates := make(chan Agent, 1)
	go func() { _ = p.Run(pctx, updates) }()
	updates <- Agent{Node: "n1", Clusters: []string{"pg-a"}, Applied: map[string]int64{"pg-a": 3}, Ready: true}
	next := func() error {
		t.Helper()
		select {
		case err := <-outcomes:
			return err
		case <-ctx.Done():
			t.Fatal("no registration attempt")
			return nil
		}
	}

	for range 2 { // the first attempt and its retry
		err := next()
		require.ErrorIs(t, err, rpctypes.ErrPermissionDenied)
		assert.ErrorContains(t, err, "put agent record /pgsvc/agents/n1: ")
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "cannot register this agent in etcd"), "warned once, not at every retry:\n%s", logs)
	assert.Contains(t, logs.String(), "etcdserver: permission denied")
	assert.Contains(t, logs.String(), `needs="read-write permission on the key prefix /pgsvc/agents/ for this agent's etcd user `+
		`(etcdctl role grant-permission --prefix=true <its role> readwrite /pgsvc/agents/)"`)
	agents, _, err := List(ctx, root, DefaultPrefix)
	require.NoError(t, err)
	assert.Empty(t, agents, "invisible to the fleet commands")

	_, err = root.RoleGrantPermission(ctx, "agent", DefaultPrefix, clientv3.GetPrefixRangeEnd(DefaultPrefix), clientv3.PermissionType(clientv3.PermReadWrite))
	require.NoError(t, err)
	for err := next(); err != nil; err = next() {
		require.ErrorIs(t, err, rpctypes.ErrPermissionDenied, "only the permission was missing")
	}
	agents, _, err = List(ctx, root, DefaultPrefix)
	require.NoError(t, err)
	assert.Equal(t, int64(3), agents["n1"].Applied["pg-a"], "registered once allowed")
	assert.Contains(t, logs.String(), "fleet: this agent is registered in etcd again")
	t.Logf("publisher log:\n%s", logs)
}
