package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
)

// Tests of issue 10 ("always converged"): HAProxy's running state is read
// back, never assumed. Real etcd and HAProxy on loopback; each pins a
// defect of the code before it (named in its comment).

// backendAlgo is the balance algorithm HAProxy runs for a backend (show
// stat's BACKEND row), "" when HAProxy has no such backend.
func (l *lab) backendAlgo(service string) string {
	l.t.Helper()
	out := l.hap.Exec("show stat -1 2 -1")
	header := strings.Split(strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "# "), ",")
	col := -1
	for i, h := range header {
		if h == "algo" {
			col = i
		}
	}
	require.GreaterOrEqual(l.t, col, 0, "show stat has an algo column")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > col && f[0] == "pg-test-"+service && f[1] == "BACKEND" {
			return f[col]
		}
	}
	return ""
}

// Pins: a reload that never happened (pgsvc killed between writing the
// files and reloading, a failed `systemctl reload`, files rendered and not
// reloaded) went unseen: the next pass found the files equal to the
// desired state and reported in sync while HAProxy still served a removed
// service and the old balance. The fingerprint HAProxy reports (`show env`)
// is compared with the files on every pass, whoever reloaded.
func TestReloadThatNeverHappenedIsSeen(t *testing.T) {
	extra := func(port int) string {
		return fmt.Sprintf("        pg_services: [ { name: extra, ip: 127.0.0.1, port: %d, dest: postgres, check: /read-only, selector: \"[]\" } ]\n", port)
	}
	l := newLab(t, labOptions{noStart: true})
	l.writeInventory(extra(l.ports["extra"]))
	l.renderInitialConfig()
	l.hap.Restart()
	require.Equal(t, "roundrobin", l.backendAlgo("replica"))
	require.NotEmpty(t, l.backendAlgo("extra"))

	// The new inventory drops the extra service and balances replicas by
	// leastconn; its files are written, HAProxy is not reloaded.
	data, err := readFile(l.invPath)
	require.NoError(t, err)
	data = strings.Replace(data, extra(l.ports["extra"]), "", 1)
	data = strings.Replace(data, `check: /read-only, selector: "[]",`, `check: /read-only, selector: "[]", balance: leastconn,`, 1)
	require.NoError(t, writeFile(l.invPath, data))
	require.NoError(t, os.Remove(filepath.Join(l.hap.ConfDir, "pg-test-extra.cfg")))
	l.renderInitialConfig()
	reloads := l.reloads()

	rep := l.oneShot(true)
	assert.NotEmpty(t, rep.Reload, "a dry run sees that HAProxy does not run the files")
	l.start()
	assert.Equal(t, reloads+1, l.reloads(), "one reload")
	assert.Equal(t, "leastconn", l.backendAlgo("replica"), "HAProxy runs the new balance")
	assert.Empty(t, l.backendAlgo("extra"), "and no longer the removed service")
	assert.True(t, l.oneShot(true).Empty(), "converged")
}

// Pins: a reload that failed once was not retried (the retry found the
// files as desired and reported in sync) and left the new files on disk,
// so HAProxy ran one config and a restart would load another. The
// previous files are put back with the reason, and the next pass retries.
func TestFailedReloadPutsFilesBackAndRetries(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	var failing atomic.Bool
	failing.Store(true)
	l.startWith(func(rec *reconcile.Reconciler, _ *reconcile.EtcdSource) {
		s := rec.HAProxy.(*dataplaneapi.Syncer)
		real := s.Config.Reloader
		// Fault: a reload that fails (a master socket that times out, a
		// `systemctl reload` refused). Real HAProxy reloads fine when asked,
		// so the failure is injected in front of the real reloader.
		s.Config.Reloader = reloaderFunc(func(ctx context.Context) error {
			if failing.Load() {
				return fmt.Errorf("master socket: i/o timeout")
			}
			return real.Reload(ctx)
		})
	})
	before := confFiles(t, l.hap.ConfDir)
	n := l.obs.count()
	l.writeInventory("        pg_services: [ { name: extra, ip: 127.0.0.1, port: " + itoa(l.ports["extra"]) + ", dest: postgres, check: /sync, selector: \"[]\" } ]\n")
	p, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err != nil }, 15*time.Second)
	require.NoError(t, err)
	assert.Contains(t, p.Err.Error(), "master socket: i/o timeout")
	assert.Contains(t, p.Err.Error(), "the previous files were put back")
	assert.Equal(t, before, confFiles(t, l.hap.ConfDir), "a restart loads what HAProxy runs")

	failing.Store(false) // the next retry reloads
	_, err = l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Report.Reloaded }, 30*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "pg-test-1 pg-test-2 pg-test-3", l.enabled("extra"))
	assert.True(t, l.oneShot(true).Empty(), "converged")
}

type reloaderFunc func(ctx context.Context) error

func (f reloaderFunc) Reload(ctx context.Context) error { return f(ctx) }
func (f reloaderFunc) String() string                   { return "test" }

// Pins two defects of services without health checks (v1 `check_port:
// none`): a slot leaving MAINT was forced `health down` (HAProxy's `no
// check` status did not count as up) and nothing ever brought it back; and
// checks added or removed were not structural, so HAProxy kept checking,
// or refused `set server … check-port` on every pass.
func TestServiceWithoutChecks(t *testing.T) {
	v1 := func(port int, checkPort string) string {
		return fmt.Sprintf("        pg_services: [ { name: extra, src_ip: 127.0.0.1, src_port: %d, dst_port: postgres, check_port: %s, check_url: /read-only, selector: \"[? pg_offline_query]\" } ]\n", port, checkPort)
	}
	l := newLab(t, labOptions{noStart: true})
	l.writeInventory(v1(l.ports["extra"], "none"))
	l.renderInitialConfig()
	l.hap.Restart()
	l.start()
	require.Equal(t, "pg-test-3", l.enabled("extra"))
	assert.Equal(t, "no check", l.status("extra", "pg-test-3"))

	l.waitRev(l.setOverride("pg-test-2", map[string]any{"pg_offline_query": true}))
	assert.Equal(t, "pg-test-2 pg-test-3", l.enabled("extra"))
	assert.Equal(t, "no check", l.status("extra", "pg-test-2"), "no forced health down: nothing would bring it back")

	// Checks added: a reload, then HAProxy checks (no `check-port` refused).
	reloads := l.reloads()
	n := l.obs.count()
	l.writeInventory(v1(l.ports["extra"], "patroni"))
	_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Report.Reloaded }, 15*time.Second)
	require.NoError(t, err, l.logs.String())
	assert.Equal(t, reloads+1, l.reloads())
	require.Eventually(t, func() bool { return strings.HasPrefix(l.status("extra", "pg-test-2"), "UP") }, 15*time.Second, 20*time.Millisecond,
		"HAProxy checks the servers now")
	assert.NotContains(t, l.logs.String(), "refused")
	assert.True(t, l.oneShot(true).Empty(), "converged")

	// Checks removed: a reload again, HAProxy stops checking.
	n = l.obs.count()
	l.writeInventory(v1(l.ports["extra"], "none"))
	_, err = l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Report.Reloaded }, 15*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "no check", l.status("extra", "pg-test-2"))
	assert.True(t, l.oneShot(true).Empty(), "converged")
}

// Pins: after a reload or restart the new worker starts every enabled slot
// UP before its first check, and in a primary service, where every member
// is enabled and the /primary check decides, new connections reached
// replicas for up to `inter`. Once per worker, pgsvc forces the non-leaders
// down (for pgsvc's own reload in the same pass; for anyone's at the pass
// the new worker triggers).
func TestNewWorkerRoutesPrimaryOnlyToTheLeader(t *testing.T) {
	l := newLab(t, labOptions{})
	for _, svc := range primaryServices {
		require.Eventually(t, func() bool { return len(l.upSlots(svc)) == 1 }, 15*time.Second, 20*time.Millisecond, "%s: checks settled", svc)
	}
	leaderOnly := func(when string) {
		t.Helper()
		for _, svc := range primaryServices {
			assert.Equal(t, []string{"pg-test-1"}, l.upSlots(svc), "%s, right after %s: only the leader is up", svc, when)
		}
	}

	// pgsvc's own reload: a service added.
	n := l.obs.count()
	l.writeInventory("        pg_services: [ { name: extra, ip: 127.0.0.1, port: " + itoa(l.ports["extra"]) + ", dest: postgres, check: /sync, selector: \"[]\" } ]\n")
	_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Report.Reloaded }, 15*time.Second)
	require.NoError(t, err)
	leaderOnly("pgsvc's reload")

	// Someone else's reload: the new worker is seen (as WatchWorker does
	// in the daemon) and verified.
	before := l.reloads()
	l.hap.Reload()
	require.Equal(t, before+1, l.reloads())
	n = l.obs.count()
	l.in.MarkAll(reconcile.CauseHAProxy)
	_, err = l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Full }, 15*time.Second)
	require.NoError(t, err)
	leaderOnly("an external reload")
}

// Pins, in the daemon, what a conf dir HAProxy does not load (-f
// elsewhere) did after a structural change: the previous files, put back
// after the unconfirmed reload, cleared the stuck state, so every full
// retry reloaded again; keyed passes succeeded, so /readyz said ok; and
// pgsvc_drift_servers kept its 0. Now one reload, then every pass fails
// with the reason, keyed ones too, and a resync counts the difference.
func TestConfDirHAProxyDoesNotLoad(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	dir := t.TempDir()
	for name, data := range confFiles(t, l.hap.ConfDir) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, src *reconcile.EtcdSource) {
		rec.Observer = tee{l.obs, m}
		src.Error, src.Ready = m.EtcdError, m.EtcdReady
		rec.HAProxy.(*dataplaneapi.Syncer).Config.Dir = dir // HAProxy loads l.hap.ConfDir
	})
	reloads := l.reloads()
	n := l.obs.count()
	l.writeInventory("        pg_services: [ { name: extra, ip: 127.0.0.1, port: " + itoa(l.ports["extra"]) + ", dest: postgres, check: /sync, selector: \"[]\" } ]\n")
	for failed := 0; failed < 4; {
		// The inventory's full pass, then its retries (100 ms doubling).
		from := l.obs.count()
		failed = 0
		for _, p := range l.obs.since(n) {
			if p.Full {
				require.Error(t, p.Err, "every full pass reports it")
				assert.Contains(t, p.Err.Error(), "does it load that directory")
				failed++
			}
		}
		if failed < 4 {
			_, err := l.obs.waitFrom(from, func(reconcile.PassInfo) bool { return true }, 30*time.Second)
			require.NoError(t, err)
		}
	}
	assert.Equal(t, reloads+1, l.reloads(), "one reload in four full passes")

	// A keyed pass applies its event at runtime and still reports (a full
	// retry that takes the event first is not one: another event then).
	var keyed reconcile.PassInfo
	weight := 30
	for found := false; !found; weight++ {
		require.Less(t, weight, 35, "no keyed pass")
		from := l.obs.count()
		rev := l.setOverride("pg-test-2", map[string]any{"pg_weight": float64(weight)})
		p, err := l.obs.waitFrom(from, func(p reconcile.PassInfo) bool { return p.Revision >= rev }, 15*time.Second)
		require.NoError(t, err)
		if !p.Full {
			keyed, found = p, true
		}
	}
	require.Error(t, keyed.Err)
	assert.Contains(t, keyed.Err.Error(), "does it load that directory")
	assert.Equal(t, weight-1, l.backend("replica").Slots["pg-test-2"].UWeight)
	ready, why := m.Ready()
	assert.False(t, ready, "HAProxy runs another structure")
	assert.Contains(t, why, "does it load that directory")

	n = l.obs.count()
	l.in.MarkAll(reconcile.CauseResync)
	_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Full && p.Err != nil }, 15*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 2.0, counter(t, m, "pgsvc_drift_servers"), "the backend HAProxy lacks and the fingerprint it runs")
	assert.Equal(t, reloads+1, l.reloads())
}
