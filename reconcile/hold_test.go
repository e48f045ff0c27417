package reconcile_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
)

// The services of the lab that check the primary: their frontends hold.
var heldServices = []string{"primary", "default"}

// holdLab is a lab whose daemon holds connections through switchovers.
func holdLab(t *testing.T, cfg reconcile.HoldConfig) *lab {
	l := newLab(t, labOptions{noStart: true})
	l.startWith(func(r *reconcile.Reconciler, _ *reconcile.EtcdSource) {
		r.Hold, r.Promotion = cfg, reconcile.HTTPPromotionProbe(&http.Client{Timeout: time.Second})
	})
	return l
}

func testHold() reconcile.HoldConfig {
	return reconcile.HoldConfig{Enabled: true, Max: 3 * time.Second, Leaderless: time.Second}
}

// frontendMaxconn is the frontend's maxconn as HAProxy shows it.
func (l *lab) frontendMaxconn(service string) int {
	l.t.Helper()
	replies, err := l.view.Batch(context.Background(), []string{dataplaneapi.FrontendsLine})
	require.NoError(l.t, err)
	fe, err := dataplaneapi.ParseFrontends(replies[0])
	require.NoError(l.t, err)
	f, ok := fe["pg-test-"+service]
	require.True(l.t, ok, "frontend pg-test-%s", service)
	return f.Maxconn
}

// waitHold waits for the pass that started (started) or ended a hold of
// pg-test, from pass number from on.
func (l *lab) waitHold(from int, started bool, what string) reconcile.HoldEvent {
	l.t.Helper()
	ev, _ := l.waitHoldPass(from, started, what)
	return ev
}

// waitHoldPass is waitHold with the pass itself.
func (l *lab) waitHoldPass(from int, started bool, what string) (reconcile.HoldEvent, reconcile.PassInfo) {
	l.t.Helper()
	var ev reconcile.HoldEvent
	pass, err := l.obs.waitFrom(from, func(p reconcile.PassInfo) bool {
		for _, h := range p.Holds {
			if h.Cluster == "pg-test" && h.Started == started {
				ev = h
				return true
			}
		}
		return false
	}, 15*time.Second)
	require.NoError(l.t, err, "%s\nlogs:\n%s", what, l.logs.String())
	return ev, pass
}

// configured is the maxconn the lab's services are rendered with
// (Pigsty's default service maxconn).
const configured = 5000

// waitingClient dials a service and echoes once, as a client whose
// connection waits in the kernel's backlog while the frontend holds. The
// channel gets its error (nil: served).
func (l *lab) waitingClient(service string) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", l.ports[service]), 10*time.Second)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- echo(c, "waited")
	}()
	return done
}

// A planned switchover on HAProxy >= 3.0: the primary services stop
// accepting when Patroni is asked (failover key), stay so while the leader
// key moves and the new leader is still a replica, and accept again once
// promotion has ended, as its REST API answers /primary (or, failing that,
// its own key says primary); a client that connected meanwhile waits and
// is served. HAProxy 2.6 never holds (raising maxconn with clients waiting
// aborts it), and says so once.
func TestHoldThroughSwitchover(t *testing.T) {
	if v := local.HAProxyVersion(t); !v.AtLeast(3, 0) {
		l := holdLab(t, reconcile.HoldConfig{Enabled: true, Max: 10 * time.Second, Leaderless: 5 * time.Second})
		l.waitRev(l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", ""))
		require.Eventually(t, func() bool { return strings.Contains(l.logs.String(), "not holding connections through switchovers") }, 10*time.Second, 20*time.Millisecond)
		assert.Contains(t, l.logs.String(), "older than 3.0")
		l.patroni.Switchover("pg-test-1", "pg-test-2")
		l.waitRev(l.patroni.Member("pg-test-2", l.patroni.Role, "running"))
		for _, s := range heldServices {
			assert.Equal(t, configured, l.frontendMaxconn(s), "%s: never held on %s", s, v.Line)
		}
		assert.Equal(t, 1, strings.Count(l.logs.String(), "not holding connections through switchovers"), "logged once")
		return
	}
	for _, tc := range []struct {
		name    string
		promote func(l *lab)
		cause   string
	}{
		{"the new leader's REST API says role primary", func(l *lab) { l.members["pg-test-2"].SetPrimary(true) }, "REST API says role primary"},
		{"the new leader's own key says primary", func(l *lab) { l.patroni.Member("pg-test-2", l.patroni.Role, "running") }, "own key says role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := holdLab(t, reconcile.HoldConfig{Enabled: true, Max: 10 * time.Second, Leaderless: 5 * time.Second})
			for _, s := range heldServices {
				require.Equal(t, configured, l.frontendMaxconn(s), "%s accepts before", s)
			}
			n := l.obs.count()
			l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
			ev := l.waitHold(n, true, "the hold to start on the switchover request")
			assert.Contains(t, ev.Cause, "switchover requested")
			for _, s := range heldServices {
				assert.Equal(t, 0, l.frontendMaxconn(s), "%s holds", s)
			}
			assert.Equal(t, configured, l.frontendMaxconn("replica"), "the replica service does not hold")
			client := l.waitingClient("primary")

			// The leader key moves before promotion ends: still held.
			l.members["pg-test-1"].SetPrimary(false)
			l.patroni.DeleteLeader()
			l.patroni.Member("pg-test-1", "demoted", "stopping")
			l.patroni.Leader("pg-test-2")
			l.waitRev(l.patroni.ClearFailover())
			rev := l.patroni.Member("pg-test-2", "replica", "running")
			l.waitRev(rev)
			// The new leader holds the lock: Patroni answers /primary with
			// 200 and role replica until promotion ends. The probe asks
			// every 50 ms; a pass follows every event.
			l.members["pg-test-2"].SetLeaderLock(true)
			asked := l.members["pg-test-2"].Asked()
			require.Eventually(t, func() bool { return l.members["pg-test-2"].Asked() >= asked+3 }, 10*time.Second, 10*time.Millisecond,
				"pgsvc keeps asking the new leader's REST API: 200 with role replica is the leader lock, not the end of promotion")
			l.waitRev(l.patroni.Member("pg-test-3", "replica", "running"))
			for _, s := range heldServices {
				assert.Equal(t, 0, l.frontendMaxconn(s), "%s still holds: the new leader is not promoted yet", s)
			}
			select {
			case err := <-client:
				t.Fatalf("the waiting client was answered during the hold: %v", err)
			default:
			}

			n = l.obs.count()
			tc.promote(l)
			ev, pass := l.waitHoldPass(n, false, "the release once promotion ended")
			assert.Equal(t, "released", ev.Result, ev.Cause)
			assert.Contains(t, ev.Cause, tc.cause)
			assert.Equal(t, int64(1), pass.Report.Released["pg-test"], "the waiting client, seen in the kernel's accept queue at the release")
			assert.Contains(t, ev.Cause, "pg-test-2 holds the leader key")
			for _, s := range heldServices {
				assert.Equal(t, configured, l.frontendMaxconn(s), "%s accepts again", s)
			}
			select {
			case err := <-client:
				require.NoError(t, err, "the client that waited is served")
			case <-time.After(10 * time.Second):
				t.Fatal("the waiting client was never served")
			}
			assert.Contains(t, l.logs.String(), "released held connections")
		})
	}
}

// Every other way a hold ends, on HAProxy >= 3.0: an aborted request, a
// leader key that stays away, hold_max, pgsvc restarting mid-hold, HAProxy
// reloading mid-hold.
func TestHoldAlwaysEnds(t *testing.T) {
	if v := local.HAProxyVersion(t); !v.AtLeast(3, 0) {
		// 2.6 never holds: TestHoldThroughSwitchover shows it refused.
		t.Logf("%s: holds are refused (TestHoldThroughSwitchover); nothing to end", v.Line)
		return
	}
	for _, tc := range []struct {
		name   string
		result string
		end    func(l *lab)
	}{
		{"switchover aborted", "aborted", func(l *lab) { l.patroni.ClearFailover() }},
		{"leader key absent too long", "leaderless", func(l *lab) { l.patroni.DeleteLeader() }},
		{"hold_max", "hold_max", func(*lab) {}},
		{"HAProxy reloaded mid-hold", "reload", func(l *lab) {
			l.hap.Reload()
			l.patroni.Member("pg-test-3", "replica", "running") // any event: the next pass sees the new worker
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := holdLab(t, testHold())
			n := l.obs.count()
			l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
			l.waitHold(n, true, "hold start")
			require.Equal(t, 0, l.frontendMaxconn("primary"))
			n = l.obs.count()
			tc.end(l)
			ev := l.waitHold(n, false, "hold end")
			assert.Equal(t, tc.result, ev.Result, ev.Cause)
			for _, s := range heldServices {
				assert.Equal(t, configured, l.frontendMaxconn(s), "%s accepts again", s)
			}
			if tc.result == "hold_max" {
				assert.GreaterOrEqual(t, ev.Held, testHold().Max)
			}
			// Ended for this request: later passes never hold it again.
			l.waitRev(l.patroni.Member("pg-test-3", "replica", "running"))
			assert.Equal(t, configured, l.frontendMaxconn("primary"), "not held again for the same request")
		})
	}

	// No pass can run: the release at hold_max needs HAProxy alone.
	for _, tc := range []struct {
		name     string
		services string // extra pg_services line
		block    func(t *testing.T, l *lab)
	}{
		{name: "hold_max with etcd lost mid-hold", block: func(t *testing.T, l *lab) {
			l.etcd.Stop()
			require.Eventually(t, func() bool { _, ready, _ := l.in.Status(); return !ready }, 10*time.Second, 20*time.Millisecond, "etcd loss noticed")
		}},
		{name: "hold_max with etcd lost while the leader key is absent", block: func(t *testing.T, l *lab) {
			// The leaderless decision is due first (1 s); its timer fires
			// with no pass able to run: hold_max must stay armed.
			l.waitRev(l.patroni.DeleteLeader())
			l.etcd.Stop()
			require.Eventually(t, func() bool { _, ready, _ := l.in.Status(); return !ready }, 10*time.Second, 20*time.Millisecond, "etcd loss noticed")
		}},
		{
			name: "hold_max with the cluster's desired state broken mid-hold",
			// null > "a" is null; 20 > "a" raises in Python's jmespath, so a
			// weight override breaks the selector on live data.
			services: `        pg_services: [ { name: extra, ip: 127.0.0.1, port: %d, dest: postgres, check: /read-only, selector: "[? pg_weight > ` + "`\\\"a\\\"`" + `]" } ]` + "\n",
			block: func(t *testing.T, l *lab) {
				// Written as a hand edit or another pgsvc would: `pgsvc set`
				// refuses an override its selectors fail on.
				put, err := l.cli.Put(context.Background(), l.layout.OverridePrefix+"pg-test-3", `{"pg_weight": 20}`)
				require.NoError(t, err)
				rev := put.Header.Revision
				_, err = l.obs.wait(func(p reconcile.PassInfo) bool { return p.Revision >= rev && p.Source == "inventory" && p.Err != nil }, 10*time.Second)
				require.NoError(t, err, "the pass fails on the desired state, leaving HAProxy as it is")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, labOptions{noStart: true})
			if tc.services != "" {
				l.writeInventory(fmt.Sprintf(tc.services, l.ports["extra"]))
				l.renderInitialConfig()
				l.hap.Restart()
			}
			l.startWith(func(r *reconcile.Reconciler, _ *reconcile.EtcdSource) { r.Hold = testHold() })
			n := l.obs.count()
			l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
			l.waitHold(n, true, "hold start")
			n = l.obs.count()
			tc.block(t, l)
			require.Equal(t, 0, l.frontendMaxconn("primary"), "still held")
			ev := l.waitHold(n, false, "the release at hold_max, outside any pass")
			assert.Equal(t, "hold_max", ev.Result, ev.Cause)
			assert.GreaterOrEqual(t, ev.Held, testHold().Max)
			for _, s := range heldServices {
				assert.Equal(t, configured, l.frontendMaxconn(s), "%s accepts again", s)
			}
		})
	}

	t.Run("pgsvc stopped mid-hold", func(t *testing.T) {
		l := holdingLab(t)
		n := l.obs.count()
		l.stop()
		ev := l.waitHold(n, false, "the release at shutdown")
		assert.Equal(t, "shutdown", ev.Result, ev.Cause)
		for _, s := range heldServices {
			assert.Equal(t, configured, l.frontendMaxconn(s), "%s: a stopping pgsvc releases its hold", s)
		}
	})

	for _, etcdDown := range []bool{false, true} {
		t.Run(fmt.Sprintf("pgsvc killed mid-hold and started again (etcd down: %v)", etcdDown), func(t *testing.T) {
			l := holdingLab(t)
			l.stop()
			// What a pgsvc killed mid-hold leaves (SIGKILL cannot be sent to
			// a goroutine): the held frontends, set on the real HAProxy.
			for _, s := range heldServices {
				l.hap.Exec("set maxconn frontend pg-test-" + s + " 0")
				require.Equal(t, 0, l.frontendMaxconn(s))
			}
			if etcdDown {
				l.etcd.Stop()
				l.noWait = true // no pass can run
			}
			l.startWith(func(r *reconcile.Reconciler, _ *reconcile.EtcdSource) { r.Hold = testHold() })
			require.Eventually(t, func() bool {
				return l.frontendMaxconn("primary") == configured && l.frontendMaxconn("default") == configured
			}, 10*time.Second, 20*time.Millisecond, "a starting pgsvc releases what an earlier one held, from the inventory alone")
			assert.Contains(t, l.logs.String(), "released connections held by an earlier pgsvc")
			if etcdDown {
				assert.Equal(t, 0, l.obs.count(), "no pass ran: etcd is down")
				return
			}
			for _, p := range l.obs.since(0) {
				assert.Empty(t, p.Holds, "a switchover under way at start-up is not held")
			}
		})
	}
}

// holdingLab is a hold lab whose daemon holds for a requested switchover.
func holdingLab(t *testing.T) *lab {
	l := holdLab(t, testHold())
	n := l.obs.count()
	l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
	l.waitHold(n, true, "hold start")
	require.Equal(t, 0, l.frontendMaxconn("primary"))
	return l
}

// A scheduled switchover holds when its time comes, not when it is asked.
func TestHoldScheduledSwitchover(t *testing.T) {
	l := holdLab(t, testHold())
	if !l.hap.Version.AtLeast(3, 0) {
		t.Logf("%s: holds are refused (TestHoldThroughSwitchover)", l.hap.Version.Line)
		return
	}
	n := l.obs.count()
	at := time.Now().Add(1500 * time.Millisecond)
	l.waitRev(l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", at.UTC().Format("2006-01-02T15:04:05.000000+00:00")))
	assert.Equal(t, configured, l.frontendMaxconn("primary"), "not before scheduled_at")
	l.waitHold(n, true, "the hold at scheduled_at")
	assert.False(t, time.Now().Before(at), "held at scheduled_at, not before")
	assert.Equal(t, 0, l.frontendMaxconn("primary"))
}

// A standby cluster's switchover is not held: its leader never answers
// /primary, so its primary services have nothing to wait for (a hold
// would last hold_max).
func TestNoHoldInStandbyCluster(t *testing.T) {
	if v := local.HAProxyVersion(t); !v.AtLeast(3, 0) {
		t.Logf("%s: holds are refused (TestHoldThroughSwitchover): nothing to show", v.Line)
		return
	}
	l := holdLab(t, testHold())
	l.waitRev(l.patroni.Config(true))
	n := l.obs.count()
	l.waitRev(l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", ""))
	l.waitRev(l.patroni.Member("pg-test-3", "replica", "running"))
	for _, p := range l.obs.since(n) {
		assert.Empty(t, p.Holds, "no hold in a standby cluster")
	}
	for _, s := range heldServices {
		assert.Equal(t, configured, l.frontendMaxconn(s), "%s accepts", s)
	}
}

// hold_from: before_stop on real HAProxy and etcd: the request arms the
// hold (the frontends keep accepting: the old primary still takes
// writes); Patroni's before_stop key for that request starts it; without
// the hook the leader key leaving the old leader does; a request cleared
// while armed holds nothing. HAProxy 2.6 never arms.
func TestHoldFromBeforeStop(t *testing.T) {
	cfg := testHold()
	cfg.AtStop = true
	armedIn := func(p reconcile.PassInfo) bool { return len(p.Armed) == 1 && p.Armed[0] == "pg-test" }
	arm := func(t *testing.T, l *lab) int64 {
		t.Helper()
		rev := l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
		p := l.waitRev(rev)
		if !l.hap.Version.AtLeast(3, 0) {
			assert.Empty(t, p.Armed, "%s never arms", l.hap.Version.Line)
			assert.Contains(t, l.logs.String(), "older than 3.0")
			return rev
		}
		assert.True(t, armedIn(p), "armed: %v", p.Armed)
		assert.Empty(t, p.Holds)
		for _, s := range heldServices {
			assert.Equal(t, configured, l.frontendMaxconn(s), "%s accepts while armed", s)
		}
		return rev
	}
	stopKey := func(t *testing.T, l *lab, leader string, request int64) int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := l.cli.Put(ctx, "/pgsvc/stopping/pg-test", fmt.Sprintf(`{"leader":%q,"request":%d}`, leader, request))
		require.NoError(t, err)
		return resp.Header.Revision
	}

	t.Run("before_stop starts the hold and promotion ends it", func(t *testing.T) {
		l := holdLab(t, cfg)
		request := arm(t, l)
		if !l.hap.Version.AtLeast(3, 0) {
			l.waitRev(stopKey(t, l, "pg-test-1", request))
			assert.Equal(t, configured, l.frontendMaxconn("primary"))
			return
		}
		p := l.waitRev(stopKey(t, l, "pg-test-1", request-1))
		assert.True(t, armedIn(p), "a before_stop for another request starts nothing")
		assert.Equal(t, configured, l.frontendMaxconn("primary"))

		n := l.obs.count()
		stopKey(t, l, "pg-test-1", request)
		ev, p := l.waitHoldPass(n, true, "the hold on before_stop")
		assert.Contains(t, ev.Cause, "Patroni is stopping pg-test-1 for the switchover requested at revision")
		assert.Empty(t, p.Armed)
		for _, s := range heldServices {
			assert.Equal(t, 0, l.frontendMaxconn(s), "%s holds", s)
		}
		client := l.waitingClient("primary")

		n = l.obs.count()
		l.patroni.DeleteLeader()
		l.patroni.Member("pg-test-1", "demoted", "stopping")
		l.patroni.Leader("pg-test-2")
		l.patroni.ClearFailover()
		l.patroni.Member("pg-test-2", l.patroni.Role, "running")
		ev = l.waitHold(n, false, "the release once promoted")
		assert.Equal(t, "released", ev.Result, ev.Cause)
		select {
		case err := <-client:
			require.NoError(t, err, "the client that waited is served")
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting client was never served")
		}
	})
	t.Run("without the hook the leader key leaving starts it", func(t *testing.T) {
		l := holdLab(t, cfg)
		arm(t, l)
		if !l.hap.Version.AtLeast(3, 0) {
			return
		}
		n := l.obs.count()
		l.patroni.DeleteLeader()
		ev := l.waitHold(n, true, "the hold once the leader key left")
		assert.Contains(t, ev.Cause, "the leader key left pg-test-1 with no word from Patroni's before_stop")
		assert.Equal(t, 0, l.frontendMaxconn("primary"))
	})
	t.Run("a request cleared while armed holds nothing", func(t *testing.T) {
		l := holdLab(t, cfg)
		n := l.obs.count()
		arm(t, l)
		p := l.waitRev(l.patroni.ClearFailover())
		assert.Empty(t, p.Armed)
		for _, p := range l.obs.since(n) {
			assert.Empty(t, p.Holds, "never held")
		}
		assert.Equal(t, configured, l.frontendMaxconn("primary"))
	})
}

// gatedReloader delays a real reload until the test opens its gate: a
// reload that takes seconds (haproxy -c of a large conf dir, a slow new
// worker) cannot be had on demand from a real HAProxy, so the real one is
// made to wait.
type gatedReloader struct {
	dataplaneapi.Reloader
	entered chan struct{}
	open    chan struct{}
}

func (g *gatedReloader) Reload(ctx context.Context) error {
	close(g.entered)
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Reloader.Reload(ctx)
}

// hold_max is a promise to clients: a pass that is slow (here, stuck in a
// reload) never delays the release, and the pass that held before it
// ended does not hold again afterwards.
func TestHoldMaxWhileAPassIsSlow(t *testing.T) {
	if v := local.HAProxyVersion(t); !v.AtLeast(3, 0) {
		t.Logf("%s: holds are refused (TestHoldThroughSwitchover); nothing to end", v.Line)
		return
	}
	gate := &gatedReloader{entered: make(chan struct{}), open: make(chan struct{})}
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(gate.open) }) }
	t.Cleanup(openGate)
	l := newLab(t, labOptions{noStart: true})
	l.startWith(func(r *reconcile.Reconciler, _ *reconcile.EtcdSource) {
		r.Hold = testHold()
		cfg := r.HAProxy.(*dataplaneapi.Syncer).Config
		gate.Reloader, cfg.Reloader = cfg.Reloader, gate
	})
	n := l.obs.count()
	l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
	l.waitHold(n, true, "hold start")
	n = l.obs.count()

	// A service added: the next pass reloads, and its reload waits.
	l.writeInventory(fmt.Sprintf("        pg_services: [ { name: extra, ip: 127.0.0.1, port: %d, dest: postgres, check: /replica, selector: \"[]\" } ]\n", l.ports["extra"]))
	select {
	case <-gate.entered:
	case <-time.After(15 * time.Second):
		t.Fatalf("the inventory change never reached a reload\nlogs:\n%s", l.logs.String())
	}
	ev := l.waitHold(n, false, "the release at hold_max while the pass waits in its reload")
	assert.Equal(t, "hold_max", ev.Result, ev.Cause)
	for _, s := range heldServices {
		assert.Equal(t, configured, l.frontendMaxconn(s), "%s accepts while the pass is still in its reload", s)
	}

	// No pass may follow the slow one (etcd lost): whatever it does after
	// its reload must leave the frontends accepting by itself.
	l.etcd.Stop()
	require.Eventually(t, func() bool { _, ready, _ := l.in.Status(); return !ready }, 10*time.Second, 20*time.Millisecond, "etcd loss noticed")
	openGate()
	_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Report.Reloaded }, 20*time.Second)
	require.NoError(t, err, "the slow pass ends\nlogs:\n%s", l.logs.String())
	for _, s := range heldServices {
		require.Eventually(t, func() bool { return l.frontendMaxconn(s) == configured }, 10*time.Second, 20*time.Millisecond,
			"%s: not held again after the slow pass, with no pass to come\nlogs:\n%s", s, l.logs.String())
	}
	ends := 0
	for _, p := range l.obs.since(n) {
		for _, h := range p.Holds {
			if !h.Started {
				ends++
			}
		}
	}
	assert.Equal(t, 1, ends, "one end for one hold")
}
