package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

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
		// HAProxy's first checks may still be running on a busy machine.
		require.Eventually(t, func() bool { return l.backend(svc).Slots["pg-test-1"].Up() }, 10*time.Second, 20*time.Millisecond,
			"%s: the primary is up before the cut", svc)
	}
	// The first pass logs what it applied (a new worker's replicas forced
	// down) after the observer saw it: count from its last line.
	require.Eventually(t, func() bool { return strings.Contains(l.logs.String(), "HAProxy in sync") }, 10*time.Second, 20*time.Millisecond)
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

// Pins the memo from the other side: a member whose own key said stopped
// was forced down and remembered as such; when it led again (a new leader
// term) and then switched over, its own key saying demoted was no news, so
// it was never forced down and stayed up beside the new primary. Each step
// of the switchover is checked: never two servers up in a service that
// admits only the primary.
func TestForcedDownLeadsAgainThenSwitchesOver(t *testing.T) {
	l := newLab(t, labOptions{})
	a, b := l.members["pg-test-1"], l.members["pg-test-2"]
	// HAProxy started every server UP; its checks take the replicas down.
	for _, svc := range primaryServices {
		require.Eventually(t, func() bool { return slices.Equal(l.upSlots(svc), []string{"pg-test-1"}) }, 15*time.Second, 20*time.Millisecond,
			"%s: only the primary is up", svc)
	}
	atMostOneUp := func(step string) {
		t.Helper()
		for _, svc := range primaryServices {
			assert.LessOrEqual(t, len(l.upSlots(svc)), 1, "%s after %s: %v up", svc, step, l.upSlots(svc))
		}
	}

	// A stops as Patroni stops it: leader key released, its own key
	// stopped. That is a positive fact: A is forced down at once.
	a.SetPrimary(false)
	l.patroni.DeleteLeader()
	l.waitRev(l.patroni.Member("pg-test-1", "demoted", "stopped"))
	for _, svc := range primaryServices {
		assert.Empty(t, l.upSlots(svc), "%s: A forced down", svc)
	}

	// A starts and takes the leader key again: a new term, A forced up.
	a.SetPrimary(true)
	l.patroni.Member("pg-test-1", l.patroni.Role, "running")
	l.waitRev(l.patroni.Leader("pg-test-1"))
	for _, svc := range primaryServices {
		assert.Equal(t, []string{"pg-test-1"}, l.upSlots(svc), "%s: A forced up in its new term", svc)
	}

	// Switchover A -> B, key by key as Patroni writes it.
	a.SetPrimary(false)
	b.SetPrimary(true)
	l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
	l.waitRev(l.patroni.DeleteLeader())
	atMostOneUp("the leader key's release")
	l.waitRev(l.patroni.Member("pg-test-1", "demoted", "stopping"))
	for _, svc := range primaryServices {
		assert.Empty(t, l.upSlots(svc), "%s: A's own key says demoted: forced down again, whatever was forced before", svc)
	}
	l.waitRev(l.patroni.Leader("pg-test-2"))
	atMostOneUp("the new leader key")
	l.patroni.ClearFailover()
	l.patroni.Member("pg-test-1", "demoted", "stopped")
	l.patroni.Member("pg-test-2", l.patroni.Role, "running")
	l.waitRev(l.patroni.Member("pg-test-1", "replica", "running"))
	for _, svc := range primaryServices {
		assert.Equal(t, []string{"pg-test-2"}, l.upSlots(svc), "%s: B up, A down", svc)
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
	// pg-a sorts before pg-test; its host is a DNS name. Its primary
	// service (static-rr) refuses any weight but 0% and 100%; its replica
	// service, sorted after it, takes any.
	a := local.StartMember(t, "127.0.0.1", true)
	others := fmt.Sprintf(`    pg-a:
      hosts:
        localhost: { pg_seq: 1, pg_role: primary, pg_port: %d, pgbouncer_port: %d, patroni_port: %d }
      vars:
        pg_cluster: pg-a
        pg_default_services:
          - { name: primary, ip: 127.0.0.1, port: %d, dest: default, check: /primary, selector: "[]", balance: static-rr }
          - { name: replica, ip: 127.0.0.1, port: %d, dest: default, check: /read-only, selector: "[]" }
`, a.Port, a.Port, a.CheckPort, local.FreePort(t, "127.0.0.1"), local.FreePort(t, "127.0.0.1"))
	l := newLab(t, labOptions{clusters: others, noStart: true})
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, src *reconcile.EtcdSource) {
		rec.Observer = tee{l.obs, m}
		src.Error, src.Ready = m.EtcdError, m.EtcdReady
	})
	reloads := l.reloads()
	assert.True(t, l.oneShot(true).Empty(), "a DNS name HAProxy resolved at load is in sync: no `set server addr` it would refuse")
	assert.NotContains(t, l.logs.String(), "refused")

	// One etcd revision dirties both clusters, so one pass takes both:
	// pg-a's weight is refused in its primary service (the plan's first
	// command) and accepted in its replica service; pg-test's weight
	// change, sorted after both, is unrelated.
	txn, err := l.cli.Txn(context.Background()).Then(
		clientv3.OpPut(l.layout.OverridePrefix+"pg-a-1", `{"pg_weight":20}`),
		clientv3.OpPut(l.layout.OverridePrefix+"pg-test-2", `{"pg_weight":30}`),
	).Commit()
	require.NoError(t, err)
	rev := txn.Header.Revision
	p, err := l.obs.wait(func(p reconcile.PassInfo) bool { return p.Revision >= rev }, 10*time.Second)
	require.NoError(t, err)
	require.Contains(t, p.Causes, "pg-a", "one pass for both clusters")
	require.Contains(t, p.Causes, "pg-test", "one pass for both clusters")
	require.NoError(t, p.Err, "the pass as a whole did not fail")
	require.Error(t, p.ClusterErrors["pg-a"], "the refused cluster is named")
	assert.Contains(t, p.ClusterErrors["pg-a"].Error(), `haproxy refused "set server pg-a-primary/pg-a-1 weight 20"`)
	assert.NotContains(t, p.ClusterErrors, "pg-test")
	assert.GreaterOrEqual(t, p.Applied["pg-test"], rev, "the other cluster converged in that same pass")
	var lines []string
	for _, c := range p.Report.Commands {
		lines = append(lines, c.Line)
	}
	assert.Contains(t, lines, "set server pg-a-replica/pg-a-1 weight 20", "the refused cluster's other commands were sent")
	assert.Contains(t, lines, "set server pg-test-replica/pg-test-2 weight 30")
	assert.Equal(t, 30, l.backend("replica").Slots["pg-test-2"].UWeight, "HAProxy shows the other cluster's change")
	aReplica, err := l.view.Backend(context.Background(), "pg-a-replica")
	require.NoError(t, err)
	assert.Equal(t, 20, aReplica.Slots["pg-a-1"].UWeight, "HAProxy shows the refused cluster's acceptable change")

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
	rev = l.setOverride("pg-a-1", nil, "pg_weight")
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

// passDesired records, for every pass, the desired state it computed, so
// a test can check what a pass reporting revision N was built from.
type passDesired struct {
	mu     sync.Mutex
	last   []reconcile.Service
	passes []desiredAt
}

type desiredAt struct {
	rev      int64
	services []reconcile.Service // nil: the pass computed none
}

func (d *passDesired) Desired(s []reconcile.Service) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = s
}

func (d *passDesired) Pass(p reconcile.PassInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.passes = append(d.passes, desiredAt{rev: p.Revision, services: d.last})
	d.last = nil
}

func (d *passDesired) all() []desiredAt {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.passes)
}

// desiredServer finds a server of a service in a pass's desired state.
func desiredServer(t *testing.T, services []reconcile.Service, service, server string) reconcile.Server {
	t.Helper()
	for _, s := range services {
		if s.Name != service {
			continue
		}
		for _, sv := range s.Servers {
			if sv.Name == server {
				return sv
			}
		}
	}
	t.Fatalf("no server %s in %s", server, service)
	return reconcile.Server{}
}

// runningOnly is a service of the members whose Patroni key says running:
// a member key's value shows in the desired state.
const runningOnly = `        pg_services: [ { name: extra, ip: 127.0.0.1, port: %d, dest: postgres, check: /read-only, selector: "[? patroni_state == ` + "`running`" + `]" } ]` + "\n"

// newRunningOnlyLab is the lab with runningOnly, and every pass's desired
// state recorded.
func newRunningOnlyLab(t *testing.T) (*lab, *passDesired) {
	t.Helper()
	l := newLab(t, labOptions{noStart: true})
	l.writeInventory(fmt.Sprintf(runningOnly, l.ports["extra"]))
	l.renderInitialConfig()
	l.hap.Restart()
	d := &passDesired{}
	l.startWith(func(rec *reconcile.Reconciler, _ *reconcile.EtcdSource) { rec.Observer = tee{l.obs, d} })
	return l, d
}

// One watch stream over both prefixes: a pass that reports etcd revision N
// was computed from every Patroni and override write up to N, and from
// none after it, whichever prefix each is under and whether they came in
// one transaction or apart. Two streams (one per prefix) let a pass report
// the revision of one while the other lagged; a watch of one prefix alone
// never sees the other's writes.
func TestPassRevisionIncludesBothPrefixes(t *testing.T) {
	l, d := newRunningOnlyLab(t)
	member := l.layout.Namespace + "pg-test/members/pg-test-2"
	override := l.layout.OverridePrefix + "pg-test-3"
	stopped, running := l.patroni.MemberValue("pg-test-2", "replica", "stopped"), l.patroni.MemberValue("pg-test-2", "replica", "running")
	put := func(ops ...clientv3.Op) int64 {
		t.Helper()
		r, err := l.cli.Txn(context.Background()).Then(ops...).Commit()
		require.NoError(t, err)
		return r.Header.Revision
	}
	type write struct {
		rev             int64
		stopped, weight bool // pg-test-2's key says stopped; pg-test-3 has weight 30
	}
	writes := []write{
		{rev: put(clientv3.OpPut(member, stopped)), stopped: true},
		{rev: put(clientv3.OpPut(override, `{"pg_weight":30}`)), stopped: true, weight: true},
	}
	// Then a burst of transactions, each flipping both keys in one
	// revision: passes are taken at every moment of the stream, so one
	// taken between two streams' halves of a revision would show (with
	// two streams, about every run here had one).
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			writes = append(writes, write{rev: put(clientv3.OpPut(member, running), clientv3.OpDelete(override))})
		} else {
			writes = append(writes, write{rev: put(clientv3.OpPut(override, `{"pg_weight":30}`), clientv3.OpPut(member, stopped)), stopped: true, weight: true})
		}
	}
	last := writes[len(writes)-1].rev
	l.waitRev(last)

	// What the state at revision r holds.
	at := func(r int64) write {
		w := write{}
		for _, x := range writes {
			if x.rev <= r {
				w = x
			}
		}
		return w
	}
	checked, passes := 0, 0
	for _, p := range d.all() {
		if p.services == nil || p.rev < writes[0].rev {
			continue
		}
		want := at(p.rev)
		gotStopped := desiredServer(t, p.services, "pg-test-extra", "pg-test-2").Slot == reconcile.Out
		gotWeight := desiredServer(t, p.services, "pg-test-replica", "pg-test-3").Weight == 30
		assert.Equal(t, want.stopped, gotStopped, "pass at revision %d: the Patroni key", p.rev)
		assert.Equal(t, want.weight, gotWeight, "pass at revision %d: the override", p.rev)
		passes++
		if p.rev >= last {
			checked++
		}
	}
	assert.Positive(t, checked, "a pass at the last revision was checked")
	t.Logf("%d passes checked against the revision they report", passes)
	assert.Equal(t, "pg-test-1 pg-test-3", l.enabled("extra"))
	assert.Equal(t, 30, l.backend("replica").Slots["pg-test-3"].UWeight)
}

// Pins: a malformed member key kept, in a watch, the value before it,
// while a list skipped it: the state depended on history. In a real
// watch it now counts as absent, as a fresh list reads it: the member has
// no Patroni state, so a service selecting on it leaves it out.
func TestMalformedMemberIsAbsentInWatchAsInList(t *testing.T) {
	l, d := newRunningOnlyLab(t)
	require.Equal(t, "pg-test-1 pg-test-2 pg-test-3", l.enabled("extra"), "every member's key says running")
	put, err := l.cli.Put(context.Background(), l.layout.Namespace+"pg-test/members/pg-test-2", `{"state":"running","conn_url":"postgres://127.0.0.12:5432/postgres"}`)
	require.NoError(t, err)
	l.waitRev(put.Header.Revision)

	st, err := reconcile.ListState(context.Background(), l.cli, l.layout, nil)
	require.NoError(t, err)
	assert.NotContains(t, st.Clusters["pg-test"].Members, "pg-test-2", "a list skips the value (no role)")
	passes := d.all()
	assert.Equal(t, reconcile.Out, desiredServer(t, passes[len(passes)-1].services, "pg-test-extra", "pg-test-2").Slot,
		"the watch reads it as absent too")
	assert.Equal(t, "pg-test-1 pg-test-3", l.enabled("extra"))
	assert.Contains(t, l.logs.String(), "ignored malformed value: the key counts as absent")
	assert.True(t, l.oneShot(true).Empty(), "a fresh list agrees with the watch")
}
