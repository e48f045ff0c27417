package reconcile_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
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
	ctx := context.Background()
	in := reconcile.NewInputs("", nil)
	m, err := selector.Load(l.invPath)
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
	replicaSession := l.session("offline") // lands on pg-test-3
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
	assert.NoError(t, echo(replicaSession, "still there?"), "offline sessions are not killed")
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

// A crashed primary's keys vanish at lease expiry: servers stay, and with
// no leader key the last known primary routing is kept.
func TestMissingKeysKeepRouting(t *testing.T) {
	l := newLab(t, labOptions{})
	before := []string{l.enabled("replica"), l.enabled("offline"), l.enabled("primary")}
	l.patroni.DeleteLeader()
	l.waitRev(l.patroni.DeleteMember("pg-test-1"))
	assert.Equal(t, before, []string{l.enabled("replica"), l.enabled("offline"), l.enabled("primary")})
	l.waitRev(l.patroni.DeleteMember("pg-test-3"))
	assert.Equal(t, "pg-test-2.b pg-test-3", l.enabled("offline"), "a member key expiring never removes a server")
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
	assert.Equal(t, 1.0, counter(t, m, `pgsvc_haproxy_reloads_total{reason="service-added"}`), "the reload is counted with its reason")
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

func TestDryRunWhileDaemonRuns(t *testing.T) {
	l := newLab(t, labOptions{})
	l.stop() // the daemon is paused so the change stays pending
	l.patroni.Switchover("pg-test-1", "pg-test-2")
	rep := l.oneShot(true)
	var lines []string
	for _, c := range rep.Commands {
		lines = append(lines, c.Line)
	}
	assert.Contains(t, lines, "set server pg-test-replica/pg-test-2.b state ready")
	assert.Contains(t, lines, "set server pg-test-replica/pg-test-2 state drain")
	assert.Contains(t, rep.Written, "pg-test-replica.cfg")
	assert.Equal(t, "pg-test-1.b pg-test-2 pg-test-3", l.enabled("replica"), "dry run changed nothing")
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
