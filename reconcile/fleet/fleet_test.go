package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
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
// clusters it serves only, readiness with the reason, holds as they start
// and end; a dry run changes nothing.
func TestReporter(t *testing.T) {
	r := NewReporter("n1", "v1", func() []string { return []string{"pg-a"} })
	r.Pass(reconcile.PassInfo{Applied: map[string]int64{"pg-a": 5, "pg-gone": 9},
		Holds: []reconcile.HoldEvent{{Cluster: "pg-a", Started: true}}})
	a := <-r.Updates()
	assert.Equal(t, map[string]int64{"pg-a": 5}, a.Applied, "only the clusters it serves")
	assert.True(t, a.Ready)
	assert.Equal(t, []string{"pg-a"}, a.Holds)

	r.Pass(reconcile.PassInfo{DryRun: true, Err: errors.New("ignored")})
	select {
	case a := <-r.Updates():
		t.Fatalf("a dry run published %+v", a)
	default:
	}
	r.Pass(reconcile.PassInfo{Applied: map[string]int64{"pg-a": 6}, ClusterErrors: reconcile.ClusterErrors{"pg-a": errors.New("haproxy refused")}})
	r.HoldsReleased([]reconcile.HoldEvent{{Cluster: "pg-a", Result: "hold_max"}}, reconcile.Report{})
	a = <-r.Updates() // the latest only
	assert.False(t, a.Ready)
	assert.Equal(t, "cluster pg-a: haproxy refused", a.Reason)
	assert.Empty(t, a.Holds, "the hold ended")
	assert.Equal(t, int64(6), a.Applied["pg-a"])
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
	r := NewReporter("n1", "v1", func() []string { return []string{"pg-a", "pg-b"} })
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
