package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
)

// Tests of issue 9 ("never worse"): faults and odd inputs never move
// traffic wrongly. Each runs pgsvc against real etcd and HAProxy on
// loopback, and each pins a defect of the code before it (named in its
// comment).

// primaryServices are the lab's services that check /primary.
var primaryServices = []string{"primary", "default"}

func (l *lab) status(service, slot string) string {
	l.t.Helper()
	return l.backend(service).Slots[slot].Status
}

// upSlots lists a backend's slots whose health HAProxy shows up.
func (l *lab) upSlots(service string) []string {
	l.t.Helper()
	var out []string
	for name, s := range l.backend(service).Slots {
		if s.Up() {
			out = append(out, name)
		}
	}
	return out
}

// Pins: leader and member keys expiring together (one lease, the node lost
// etcd) were read as a demotion, and pgsvc sent `health down` and `shutdown
// sessions` to a primary that Patroni's failsafe mode keeps writable.
func TestLeaseExpiryIsNotADemotion(t *testing.T) {
	l := newLab(t, labOptions{})
	sess := l.session("primary")
	for _, svc := range primaryServices {
		require.True(t, l.backend(svc).Slots["pg-test-1"].Up(), "%s: the primary is up before the cut", svc)
	}
	// pg-test-1 loses etcd: its lease expires, leader and member key go in one revision.
	logged := len(l.logs.String())
	l.waitRev(l.patroni.ExpireLease("pg-test-1"))

	for _, svc := range primaryServices {
		assert.True(t, l.backend(svc).Slots["pg-test-1"].Up(), "%s: an absent key is no evidence; the primary stays up, got %s", svc, l.status(svc, "pg-test-1"))
	}
	assert.NoError(t, echo(sess, "still writing"), "the primary's session survives")
	since := l.logs.String()[logged:]
	assert.NotContains(t, since, "health down", "nothing forced down")
	assert.NotContains(t, since, "shutdown sessions")

	// etcd is back: Patroni takes the leader key again on a new lease (a new
	// term for the same member). Nothing needs forcing: it is up.
	l.waitRev(l.patroni.Steady("pg-test-1", "pg-test-1", "pg-test-2", "pg-test-3"))
	assert.NoError(t, echo(sess, "still writing"))
	assert.True(t, l.oneShot(true).Empty(), "converged")
}

// Pins: a standby cluster's leader (503 on /primary) was forced `health up`
// in services that check /primary because its member key said running.
// Patroni writes the leader key while the new leader's key still says
// replica; the cluster's config key says it is a standby cluster.
func TestStandbyLeaderIsNotForcedUp(t *testing.T) {
	l := newLab(t, labOptions{})
	for _, m := range l.members {
		m.SetPrimary(false) // a standby cluster: /primary answers 503 everywhere
	}
	l.patroni.Config(true)
	l.patroni.Member("pg-test-1", "standby_leader", "running")
	for _, svc := range primaryServices {
		require.Eventually(t, func() bool { return strings.HasPrefix(l.status(svc, "pg-test-1"), "DOWN") }, 15*time.Second, 20*time.Millisecond,
			"%s: the checks take the standby leader down", svc)
	}
	// Standby leader change pg-test-1 -> pg-test-2, as Patroni writes it.
	l.patroni.DeleteLeader()
	l.patroni.Member("pg-test-1", "replica", "running")
	l.waitRev(l.patroni.Leader("pg-test-2"))

	for _, svc := range primaryServices {
		assert.True(t, strings.HasPrefix(l.status(svc, "pg-test-2"), "DOWN"), "%s: the new standby leader is not forced up, got %s", svc, l.status(svc, "pg-test-2"))
	}
	assert.NotContains(t, l.logs.String(), "health up")
	l.waitRev(l.patroni.Member("pg-test-2", "standby_leader", "running"))
	for _, svc := range primaryServices {
		assert.Empty(t, l.upSlots(svc), "%s: nothing routes writes in a standby cluster", svc)
	}
	assert.Equal(t, "pg-test-1 pg-test-2.b pg-test-3", l.enabled("replica"), "replica follows Pigsty: the standby leader is the backup")
}

// Pins: a lease blip forced A down and remembered it; A leading again and a
// switchover A->B then forced B up without ever forcing A down: two UP
// servers in a primary-only service. Forcing now follows the leader key's
// identity (its create revision: a new lease is a new term).
func TestNoStaleMemoAcrossTerms(t *testing.T) {
	l := newLab(t, labOptions{})
	l.waitRev(l.patroni.ExpireLease("pg-test-1")) // the blip
	l.waitRev(l.patroni.Steady("pg-test-1", "pg-test-1", "pg-test-2", "pg-test-3"))
	for _, svc := range primaryServices {
		require.Eventually(t, func() bool { return l.backend(svc).Slots["pg-test-1"].Up() }, 15*time.Second, 20*time.Millisecond,
			"%s: A is up, leading again", svc)
	}

	l.members["pg-test-1"].SetPrimary(false)
	l.members["pg-test-2"].SetPrimary(true)
	l.waitRev(l.patroni.Switchover("pg-test-1", "pg-test-2"))
	for _, svc := range primaryServices {
		assert.Equal(t, []string{"pg-test-2"}, l.upSlots(svc), "%s: only the new primary is up (the old one forced down at once)", svc)
	}
}

// Pins: a failed pass made every later pass full and re-fired `health up`
// for a new primary on every retry, overriding its checks. Forcing happens
// once per leader term, never on a retry or a resync. The cluster here
// fails every pass on purpose: a service with a static balance algorithm,
// where HAProxy refuses any weight but 0% and 100%, and a weight override.
func TestForcingOncePerTermNotOnRetry(t *testing.T) {
	static := `        pg_services: [ { name: extra, ip: 127.0.0.1, port: %d, dest: postgres, check: /read-only, selector: "[]", balance: static-rr } ]` + "\n"
	l := newLab(t, labOptions{noStart: true})
	l.writeInventory(fmt.Sprintf(static, l.ports["extra"]))
	l.renderInitialConfig()
	l.hap.Restart()
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, _ *reconcile.EtcdSource) { rec.Observer = tee{l.obs, m} })
	rev := l.setOverride("pg-test-3", map[string]any{"pg_weight": 20.0})
	_, err := l.obs.wait(func(p reconcile.PassInfo) bool { return p.Revision >= rev && p.ClusterErrors["pg-test"] != nil }, 10*time.Second)
	require.NoError(t, err, "HAProxy refuses the weight in the static-rr service")

	// HAProxy started every server UP; wait until its checks took the
	// replica down, so the forcing below has something to force.
	require.Eventually(t, func() bool { return strings.HasPrefix(l.status("primary", "pg-test-2"), "DOWN") }, 15*time.Second, 20*time.Millisecond)
	l.members["pg-test-1"].SetPrimary(false)
	l.members["pg-test-2"].SetPrimary(true)
	rev = l.patroni.Switchover("pg-test-1", "pg-test-2")
	_, err = l.obs.wait(func(p reconcile.PassInfo) bool { return p.Revision >= rev }, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{"pg-test-2"}, l.upSlots("primary"), "forced up once")

	// Its checks now say it is not a primary: HAProxy takes it down.
	l.members["pg-test-2"].SetPrimary(false)
	require.Eventually(t, func() bool { return strings.HasPrefix(l.status("primary", "pg-test-2"), "DOWN") }, 15*time.Second, 20*time.Millisecond)
	n := l.obs.count()
	for i := 0; i < 3; i++ { // three retries of the failing cluster, then a resync
		_, err = l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.ClusterErrors["pg-test"] != nil }, 30*time.Second)
		require.NoError(t, err)
		n = l.obs.count()
	}
	l.in.MarkAll(reconcile.CauseResync)
	_, err = l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Full }, 30*time.Second)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(l.status("primary", "pg-test-2"), "DOWN"), "retries and resyncs leave the checks in charge, got %s", l.status("primary", "pg-test-2"))
	assert.Equal(t, 1, strings.Count(l.logs.String(), "pg-test-primary/pg-test-2 health up"), "one health up in the whole term")
	assert.Equal(t, 1.0, counter(t, m, `pgsvc_cluster_failing{cluster="pg-test"}`))
}

// Pins: the syncer returned on the first refused command and the loop had
// one global backoff that never took effect (the dirty marks put back woke
// it at once: thousands of failed passes a second), so one cluster's
// problem starved every service sorted after it, in all clusters. The
// example from the field: an inventory_hostname that is a DNS name, which
// HAProxy refuses in `set server addr` on every pass. A DNS name is now
// the file's (HAProxy resolves it at load); a refused command fails its
// own cluster, which backs off alone.
func TestOneBrokenClusterStaysInItsOwnCluster(t *testing.T) {
	// pg-a sorts before pg-test; its host is a DNS name.
	a := local.StartMember(t, "127.0.0.1", true)
	others := fmt.Sprintf(`    pg-a:
      hosts:
        localhost: { pg_seq: 1, pg_role: primary, pg_port: %d, pgbouncer_port: %d, patroni_port: %d }
      vars:
        pg_cluster: pg-a
        pg_default_services:
          - { name: primary, ip: 127.0.0.1, port: %d, dest: default, check: /primary, selector: "[]", balance: static-rr }
`, a.Port, a.Port, a.CheckPort, local.FreePort(t, "127.0.0.1"))
	l := newLab(t, labOptions{clusters: others, noStart: true})
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, src *reconcile.EtcdSource) {
		rec.Observer = tee{l.obs, m}
		src.Error, src.Ready = m.EtcdError, m.EtcdReady
	})
	reloads := l.reloads()
	assert.True(t, l.oneShot(true).Empty(), "a DNS name HAProxy resolved at load is in sync: no `set server addr` it would refuse")
	assert.NotContains(t, l.logs.String(), "refused")

	// pg-a now fails every pass: HAProxy refuses weights in a static-rr backend.
	l.setOverride("pg-a-1", map[string]any{"pg_weight": 20.0})
	// An unrelated weight change in pg-test lands all the same.
	l.waitRev(l.setOverride("pg-test-2", map[string]any{"pg_weight": 30.0}))
	assert.Equal(t, 30, l.backend("replica").Slots["pg-test-2"].UWeight, "the other cluster converges")
	p, err := l.obs.wait(func(p reconcile.PassInfo) bool { return p.ClusterErrors["pg-a"] != nil }, 10*time.Second)
	require.NoError(t, err)
	assert.Contains(t, p.ClusterErrors["pg-a"].Error(), `haproxy refused "set server pg-a-primary/pg-a-1 weight 20"`)

	// The failing cluster backs off: count its passes over a few seconds.
	// The bound is loose on purpose (backoff from 100 ms doubling to 10 s
	// allows about 6 in 5 s); the defect made thousands.
	n := l.obs.count()
	time.Sleep(5 * time.Second)
	failed := 0
	for _, p := range l.obs.since(n) {
		if p.ClusterErrors["pg-a"] != nil {
			failed++
		}
	}
	assert.Less(t, failed, 15, "pg-a retries with backoff, not in a loop")
	ready, why := m.Ready()
	assert.False(t, ready)
	assert.Contains(t, why, "cluster pg-a: ")
	assert.Equal(t, 1.0, counter(t, m, `pgsvc_cluster_failing{cluster="pg-a"}`))
	assert.Equal(t, 0.0, counter(t, m, `pgsvc_cluster_failing{cluster="pg-test"}`))

	// The operator removes the override: pg-a converges and is ready again.
	rev := l.setOverride("pg-a-1", nil, "pg_weight")
	_, err = l.obs.wait(func(p reconcile.PassInfo) bool {
		_, dirty := p.Causes["pg-a"]
		return p.Revision >= rev && dirty && p.ClusterErrors["pg-a"] == nil
	}, 15*time.Second)
	require.NoError(t, err)
	ready, why = m.Ready()
	assert.True(t, ready, why)
	assert.Equal(t, 0.0, counter(t, m, `pgsvc_cluster_failing{cluster="pg-a"}`))
	assert.Equal(t, reloads, l.reloads(), "no reload")
}

// Pins: a malformed value was skipped by a list but kept the value before
// it in a watch, so the state depended on history. Both now read it as an
// absent key.
func TestMalformedValueIsAbsentInWatchAsInList(t *testing.T) {
	l := newLab(t, labOptions{})
	l.waitRev(l.setOverride("pg-test-2", map[string]any{"pg_weight": 30.0}))
	put, err := l.cli.Put(context.Background(), "/pgsvc/overrides/pg-test-2", `{"pg_weight": 9000}`)
	require.NoError(t, err)
	l.waitRev(put.Header.Revision)
	assert.Equal(t, 100, l.backend("replica").Slots["pg-test-2"].UWeight, "the watched state is the listed one: no override")
	assert.True(t, l.oneShot(true).Empty(), "a fresh list agrees with the watch")
}
