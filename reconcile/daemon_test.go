package reconcile_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
	"github.com/pgsvc/pgsvc/selector"
)

// oneShot runs `pgsvc reconcile` against the lab: a fresh etcd list, one pass.
func (l *lab) oneShot(dryRun bool) reconcile.Report {
	l.t.Helper()
	return l.oneShotWith(l.invPath, dryRun)
}

func (l *lab) oneShotWith(inventory string, dryRun bool) reconcile.Report {
	l.t.Helper()
	ctx := context.Background()
	in := reconcile.NewInputs("", nil)
	m, err := selector.Load(inventory)
	require.NoError(l.t, err)
	require.NoError(l.t, in.SetModel(m))
	st, err := reconcile.ListState(ctx, l.cli, l.layout, nil)
	require.NoError(l.t, err)
	in.ReplaceState(st)
	rt, err := dataplaneapi.NewRuntime(ctx, l.hap.StatsSocket)
	require.NoError(l.t, err)
	rec := &reconcile.Reconciler{In: in, Log: slog.New(slog.DiscardHandler),
		HAProxy: &dataplaneapi.Syncer{Runtime: rt, Config: &dataplaneapi.ConfigDir{Dir: l.hap.ConfDir, MainConfig: l.hap.GlobalConfig}}}
	rep, err := rec.Pass(ctx, dryRun)
	require.NoError(l.t, err)
	return rep
}

func TestDaemonStartsConverged(t *testing.T) {
	l := newLab(t, labOptions{})
	assert.Equal(t, "pg-test-1 pg-test-2 pg-test-3", l.enabled("primary"))
	assert.Equal(t, "pg-test-1.b pg-test-2 pg-test-3", l.enabled("replica"))
	assert.Equal(t, "pg-test-2.b pg-test-3", l.enabled("offline"))
	assert.True(t, l.oneShot(true).Empty(), "a converged system plans nothing")
	assert.Equal(t, 0, l.reloads())
}

// A switchover written to etcd exactly as Patroni writes it moves every
// service live: backup flips in replica and offline, acceleration in the
// /primary services, no reload, and the demoted primary's sessions in the
// primary service are shut at once while replica sessions drain.
func TestSwitchoverAppliedLive(t *testing.T) {
	l := newLab(t, labOptions{})
	primarySession := l.session("primary") // lands on pg-test-1, the only UP server
	offlineSession := l.session("offline") // lands on pg-test-3
	// roundrobin over the two active replicas: one session on each, so one
	// is on pg-test-2, which the switchover moves from active to backup.
	replicaSessions := []net.Conn{l.session("replica"), l.session("replica")}
	assert.Equal(t, 1, l.sessions("replica", "pg-test-2"), "a replica session on pg-test-2")
	reloads := l.reloads()

	// Patroni's REST API follows the roles as etcd does.
	l.members["pg-test-1"].SetPrimary(false)
	l.members["pg-test-2"].SetPrimary(true)
	rev := l.patroni.Switchover("pg-test-1", "pg-test-2")
	l.waitRev(rev)

	assert.Equal(t, "pg-test-1 pg-test-2.b pg-test-3", l.enabled("replica"), "new primary is the backup, old primary an active replica")
	assert.Equal(t, "pg-test-1.b pg-test-3", l.enabled("offline"), "old primary backs up offline, the new one left")
	for _, svc := range []string{"primary", "default"} {
		b := l.backend(svc)
		assert.Equal(t, "UP", b.Slots["pg-test-2"].Status, "%s: new primary forced up without waiting for rise x fastinter", svc)
		assert.True(t, strings.HasPrefix(b.Slots["pg-test-1"].Status, "DOWN"), "%s: old primary forced down, got %s", svc, b.Slots["pg-test-1"].Status)
	}
	assert.Error(t, echo(primarySession, "still there?"), "demoted primary's sessions in /primary services are shut down")
	assert.NoError(t, echo(offlineSession, "still there?"), "offline sessions are not killed")
	for _, c := range replicaSessions {
		assert.NoError(t, echo(c, "still there?"), "replica sessions drain: the new primary's too")
	}
	assert.Equal(t, reloads, l.reloads(), "zero reloads")
	assert.True(t, l.oneShot(true).Empty(), "converged after the switchover")
}

func TestOfflineToggleDrainsLive(t *testing.T) {
	l := newLab(t, labOptions{})
	sess := l.session("offline") // on pg-test-3, the only active offline server
	reloads := l.reloads()

	l.waitRev(l.setOverride("pg-test-3", map[string]any{"pg_offline_query": false}))
	assert.Equal(t, "pg-test-2.b pg-test-3.b", l.enabled("offline"), "pg-test-3 left: both replicas are backups")
	b := l.backend("offline")
	assert.Equal(t, dataplaneapi.AdminDrain, b.Slots["pg-test-3"].Admin, "the old slot drains")
	require.NoError(t, echo(sess, "long query"), "a session on the instance that left survives")

	l.waitRev(l.setOverride("pg-test-2", map[string]any{"pg_offline_query": true}))
	assert.Equal(t, "pg-test-2 pg-test-3.b", l.enabled("offline"))

	l.setOverride("pg-test-2", nil, "pg_offline_query")
	l.waitRev(l.setOverride("pg-test-3", nil, "pg_offline_query"))
	assert.Equal(t, "pg-test-2.b pg-test-3", l.enabled("offline"), "back to the inventory's view")
	assert.Equal(t, reloads, l.reloads(), "zero reloads")
	require.NoError(t, echo(sess, "still running"))
}

func TestWeightOverrideLive(t *testing.T) {
	l := newLab(t, labOptions{})
	reloads := l.reloads()
	l.waitRev(l.setOverride("pg-test-2", map[string]any{"pg_weight": 20.0}))
	for _, svc := range []string{"primary", "replica", "default", "offline"} {
		b := l.backend(svc)
		assert.Equal(t, 20, b.Slots["pg-test-2"].UWeight, svc)
		assert.Equal(t, 20, b.Slots["pg-test-2.b"].UWeight, svc)
		assert.Equal(t, 100, b.Slots["pg-test-1"].UWeight, svc)
	}
	l.waitRev(l.setOverride("pg-test-2", nil, "pg_weight"))
	assert.Equal(t, 100, l.backend("replica").Slots["pg-test-2"].UWeight)
	assert.Equal(t, reloads, l.reloads())
	data, err := readFile(l.hap.ConfDir + "/pg-test-replica.cfg")
	require.NoError(t, err)
	assert.Contains(t, data, "server pg-test-2 127.0.0.12:", "config on disk follows")
}

func TestResyncRepairsHandEdits(t *testing.T) {
	l := newLab(t, labOptions{})
	l.hap.Exec("set server pg-test-replica/pg-test-2 weight 7")
	l.hap.Exec("set server pg-test-offline/pg-test-2.b state maint")
	rep := l.oneShot(true)
	var lines []string
	for _, c := range rep.Commands {
		lines = append(lines, c.Line)
	}
	assert.Equal(t, []string{
		"set server pg-test-offline/pg-test-2.b state ready",
		"set server pg-test-offline/pg-test-2.b health down", // health unknown: checks must admit it
		"set server pg-test-replica/pg-test-2 weight 100",
	}, lines, "dry run sees the drift")
	assert.Equal(t, 7, l.backend("replica").Slots["pg-test-2"].UWeight, "dry run changed nothing")
	n := l.obs.count()
	l.in.MarkAll(reconcile.CauseResync)
	_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil }, 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 100, l.backend("replica").Slots["pg-test-2"].UWeight)
	assert.Equal(t, "pg-test-2.b pg-test-3", l.enabled("offline"))
	assert.True(t, l.oneShot(true).Empty(), "a reconcile right after a converged one issues nothing")
}

func TestFailStaticWhenEtcdIsDown(t *testing.T) {
	l := newLab(t, labOptions{})
	l.etcd.Stop()
	require.Eventually(t, func() bool { _, ready, _ := l.in.Status(); return !ready }, 10*time.Second, 20*time.Millisecond, "etcd loss noticed")
	l.hap.Exec("set server pg-test-replica/pg-test-2 weight 7")
	n := l.obs.count()
	l.in.MarkAll(reconcile.CauseResync)
	// Nothing may be applied while etcd is unreachable; prove the loop is
	// idle by the absence of any pass while the mark waits.
	_, err := l.obs.waitFrom(n, func(reconcile.PassInfo) bool { return true }, time.Second)
	assert.Error(t, err, "no pass runs while etcd is down")
	assert.Equal(t, 7, l.backend("replica").Slots["pg-test-2"].UWeight, "HAProxy untouched")

	l.etcd.Start()
	_, err = l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Full }, 20*time.Second)
	require.NoError(t, err, "converges once etcd is back")
	assert.Equal(t, 100, l.backend("replica").Slots["pg-test-2"].UWeight)
}

// etcd dying between pgsvc's list and its watch (creating a watch blocks
// while etcd is unreachable) is still noticed by the probe.
func TestEtcdLostBeforeWatchIsNoticed(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	var once sync.Once
	l.startWith(func(_ *reconcile.Reconciler, src *reconcile.EtcdSource) {
		src.Ready = func(ready bool) {
			if ready {
				once.Do(l.etcd.Stop)
			}
		}
	})
	// Readiness drops before the warning is logged, so wait for both.
	require.Eventually(t, func() bool {
		_, ready, _ := l.in.Status()
		return !ready && strings.Contains(l.logs.String(), "etcd watch lost")
	}, 10*time.Second, 20*time.Millisecond, "etcd loss noticed")
	l.etcd.Start()
	require.Eventually(t, func() bool { _, ready, _ := l.in.Status(); return ready }, 20*time.Second, 20*time.Millisecond, "back once etcd answers")
}

// A crashed primary's keys vanish at lease expiry: servers stay, and with
// no leader key the last known primary routing is kept.
func TestMissingKeysKeepRouting(t *testing.T) {
	l := newLab(t, labOptions{})
	// After a switchover the live primary (pg-test-2) is not the
	// inventory's (pg-test-1): losing the keys must not fall back to it.
	l.waitRev(l.patroni.Switchover("pg-test-1", "pg-test-2"))
	before := []string{l.enabled("replica"), l.enabled("offline")}
	require.Equal(t, []string{"pg-test-1 pg-test-2.b pg-test-3", "pg-test-1.b pg-test-3"}, before)
	l.patroni.DeleteLeader()
	l.waitRev(l.patroni.DeleteMember("pg-test-2"))
	assert.Equal(t, before, []string{l.enabled("replica"), l.enabled("offline")}, "no leader key: last known primary routing kept")
	l.waitRev(l.patroni.DeleteMember("pg-test-3"))
	assert.Equal(t, before, []string{l.enabled("replica"), l.enabled("offline")}, "a member key expiring never removes a server")
	n := l.obs.count()
	l.in.MarkAll(reconcile.CauseResync)
	_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Full }, 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, before, []string{l.enabled("replica"), l.enabled("offline")}, "a full resync keeps it too")
	rep := l.oneShot(true)
	assert.True(t, rep.Empty(), "a pgsvc started now, without a memory, finds the last primary in Patroni's history: %+v", rep)
}

// A watch that etcd compacted under it re-lists and re-watches, and the
// change it missed is applied. The compaction happens between pgsvc's list
// and its watch, so real etcd answers the watch with ErrCompacted.
func TestCompactedWatchRelists(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	var once sync.Once
	l.startWith(func(_ *reconcile.Reconciler, src *reconcile.EtcdSource) {
		src.Ready = func(ready bool) {
			if !ready {
				return
			}
			once.Do(func() {
				ctx := context.Background()
				_, err := l.cli.Put(ctx, "/pgsvc/overrides/pg-test-2", `{"pg_weight":20}`)
				require.NoError(t, err)
				put, err := l.cli.Put(ctx, "/pgsvc/overrides/pg-test-2", `{"pg_weight":30}`)
				require.NoError(t, err)
				_, err = l.cli.Compact(ctx, put.Header.Revision)
				require.NoError(t, err)
			})
		}
	})
	require.Eventually(t, func() bool { return l.backend("replica").Slots["pg-test-2"].UWeight == 30 }, 15*time.Second, 20*time.Millisecond)
	assert.Contains(t, l.logs.String(), "watch compacted")
}

// The periodic resync, on its own ticker, repairs a change made by hand.
func TestPeriodicResyncRepairs(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	l.startWith(func(rec *reconcile.Reconciler, _ *reconcile.EtcdSource) { rec.Resync = 200 * time.Millisecond })
	l.hap.Exec("set server pg-test-replica/pg-test-2 weight 7")
	// The weight is set before the line about it is logged, so wait for both.
	require.Eventually(t, func() bool {
		return l.backend("replica").Slots["pg-test-2"].UWeight == 100 &&
			strings.Contains(l.logs.String(), "kind=weight before=7 after=100 cause=resync")
	}, 10*time.Second, 20*time.Millisecond)
}

func TestHAProxyRestartComesBackFromDisk(t *testing.T) {
	l := newLab(t, labOptions{})
	l.waitRev(l.setOverride("pg-test-2", map[string]any{"pg_offline_query": true, "pg_weight": 30.0}))
	want := []string{l.enabled("offline"), l.enabled("replica")}
	l.hap.Restart()
	assert.Equal(t, want, []string{l.enabled("offline"), l.enabled("replica")}, "the files on disk hold the desired state")
	assert.Equal(t, 30, l.backend("replica").Slots["pg-test-2"].UWeight)
	assert.True(t, l.oneShot(true).Empty(), "nothing left to do after a restart")
}

func TestStructuralChangeReloadsOnce(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, _ *reconcile.EtcdSource) { rec.Observer = tee{l.obs, m} })
	reloads := l.reloads()
	n := l.obs.count()
	l.writeInventory("        pg_services: [ { name: extra, ip: 127.0.0.1, port: " + itoa(l.ports["extra"]) + ", dest: postgres, check: /sync, selector: \"[]\" } ]\n")
	p, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Report.Reloaded }, 15*time.Second)
	require.NoError(t, err, l.logs.String())
	assert.Equal(t, []string{"service pg-test-extra added"}, p.Report.Reload)
	assert.Equal(t, reloads+1, l.reloads(), "one reload")
	assert.Equal(t, 1.0, counter(t, m, `pgsvc_haproxy_reloads_total`), "one reload counted")
	assert.Equal(t, 1.0, counter(t, m, `pgsvc_haproxy_reload_reasons_total{reason="service-added"}`), "with its reason")
	assert.Equal(t, "pg-test-1 pg-test-2 pg-test-3", l.enabled("extra"))
	assert.Equal(t, "pg-test-1.b pg-test-2 pg-test-3", l.enabled("replica"), "other services come back in the desired state")
}

func TestInvalidInventoryKeepsLastGood(t *testing.T) {
	l := newLab(t, labOptions{})
	reloads := l.reloads()
	require.NoError(t, writeFile(l.invPath, "all: { children: { pg-test: { hosts: { 10.0.0.1: { pg_seq: 1 } }, vars: { pg_cluster: pg-test } } } }\n"))
	require.Eventually(t, func() bool { return strings.Contains(l.logs.String(), "inventory rejected") }, 10*time.Second, 20*time.Millisecond)
	assert.Contains(t, l.logs.String(), "missing pg_role")
	assert.Equal(t, "pg-test-1.b pg-test-2 pg-test-3", l.enabled("replica"))
	// The last good model stays in force: overrides (written by a pgsvc
	// elsewhere) still apply.
	put, err := l.cli.Put(context.Background(), "/pgsvc/overrides/pg-test-3", `{"pg_weight":10}`)
	require.NoError(t, err)
	l.waitRev(put.Header.Revision)
	assert.Equal(t, 10, l.backend("replica").Slots["pg-test-3"].UWeight)
	assert.Equal(t, reloads, l.reloads())
}

// Maintenance: with the daemon running, the operator dry-runs a candidate
// inventory (pg-test-3 stops serving offline queries). The plan is printed,
// nothing changes, and the daemon stays converged on the live inventory.
func TestDryRunWhileDaemonRuns(t *testing.T) {
	l := newLab(t, labOptions{})
	data, err := readFile(l.invPath)
	require.NoError(t, err)
	candidate := l.invPath + ".candidate"
	require.NoError(t, writeFile(candidate, strings.Replace(data, ", pg_offline_query: true", "", 1)))
	files := confFiles(t, l.hap.ConfDir)

	rep := l.oneShotWith(candidate, true)
	var lines []string
	for _, c := range rep.Commands {
		lines = append(lines, c.Line)
	}
	assert.Contains(t, lines, "set server pg-test-offline/pg-test-3.b state ready")
	assert.Contains(t, lines, "set server pg-test-offline/pg-test-3 state drain")
	assert.Equal(t, []string{"pg-test-offline.cfg"}, rep.Written)
	assert.Equal(t, "pg-test-2.b pg-test-3", l.enabled("offline"), "dry run changed nothing in HAProxy")
	assert.Equal(t, files, confFiles(t, l.hap.ConfDir), "nor on disk")
	assert.True(t, l.oneShot(true).Empty(), "the running daemon is converged on the live inventory")
}

// sessions is a server's current session count (show stat scur).
func (l *lab) sessions(service, server string) int {
	l.t.Helper()
	for _, line := range strings.Split(l.hap.Exec("show stat pg-test-"+service+" 4 -1"), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 4 && f[1] == server {
			n, err := strconv.Atoi(f[4])
			require.NoError(l.t, err)
			return n
		}
	}
	l.t.Fatalf("no server %s in %s", server, service)
	return 0
}

func confFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		data, err := readFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = data
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

func writeFile(p, content string) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
