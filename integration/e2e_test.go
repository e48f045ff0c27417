//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	viaHAProxy = "postgres://postgres:postgres@127.0.0.1:5433/postgres?" + dsnOptions
	direct     = "postgres://postgres:postgres@10.10.10.11:5432,10.10.10.12:5432,10.10.10.13:5432/postgres?target_session_attrs=read-write&" + dsnOptions
)

// windows collects the measured write-unavailable windows for the summary.
var windows []string

// TestLab runs the end-to-end scenarios in order against one lab.
func TestLab(t *testing.T) {
	healthy(t)
	converged(t)
	sqlExec(t, viaHAProxy, "CREATE TABLE IF NOT EXISTS pgsvc_probe (at timestamptz)")
	start := reloads(t)

	t.Run("convergence", testConvergence)
	t.Run("switchover", func(t *testing.T) { testSwitchover(t, true) })
	t.Run("switchover-checks-only", func(t *testing.T) { testSwitchover(t, false) })
	t.Run("offline-toggle", testOfflineToggle)
	t.Run("weight", testWeight)
	t.Run("dry-run-maintenance", testDryRun)
	t.Run("etcd-down", testEtcdDown)
	assert.Equal(t, start, reloads(t), "zero HAProxy reloads across role, offline, weight and override changes")
	t.Run("haproxy-restart", testHAProxyRestart)
	t.Run("crash-failover", testCrash)

	fmt.Println("\nwrite-unavailable windows during one switchover (same run, same cluster):")
	for _, w := range windows {
		fmt.Println("  " + w)
	}
}

func sqlExec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

// serverNode is the node a service port routes to (pgbouncer reaches
// PostgreSQL over its unix socket, so the node is read from /etc/hostname)
// and whether it is in recovery.
func serverNode(t testing.TB, port int) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/postgres?%s", port, dsnOptions))
	if err != nil {
		return "unreachable: " + err.Error(), false
	}
	defer conn.Close(context.Background())
	var node string
	var recovery bool
	if err := conn.QueryRow(ctx, "SELECT trim(pg_read_file('/etc/hostname'), E'\\n '), pg_is_in_recovery()").Scan(&node, &recovery); err != nil {
		return "query failed: " + err.Error(), false
	}
	return node, recovery
}

func expectRoles(t *testing.T, primary string) {
	t.Helper()
	replicas := []string{}
	for n := range nodes {
		if n != primary {
			replicas = append(replicas, n)
		}
	}
	want := map[string][]string{
		"replica": {primary + ".b"},
		"primary": {"pg-test-1", "pg-test-2", "pg-test-3"},
		"default": {"pg-test-1", "pg-test-2", "pg-test-3"},
	}
	for _, r := range replicas {
		want["replica"] = append(want["replica"], r)
	}
	for svc, slots := range want {
		got := strings.Fields(enabled(t, svc))
		assert.ElementsMatch(t, slots, got, "service %s with primary %s", svc, primary)
	}
	for _, port := range []int{5433, 5436} {
		eventually(t, 30*time.Second, fmt.Sprintf("port %d to reach the new primary", port), func() bool {
			node, recovery := serverNode(t, port)
			return node == primary && !recovery
		})
	}
	node, recovery := serverNode(t, 5434)
	assert.True(t, recovery, "replica service reaches a replica (%s)", node)
}

func testConvergence(t *testing.T) {
	primary := healthy(t)
	out, code := pgsvc(t, "status")
	require.Equal(t, 0, code, out)
	assert.NotContains(t, out, "differ from the desired state", out)
	expectRoles(t, primary)
	assert.Equal(t, "pg-test-2.b pg-test-3", enabled(t, "offline"), "inventory: pg-test-3 serves offline queries, pg-test-2 backs it up")
}

// testSwitchover runs a planned switchover while two probes write: one
// through HAProxy's primary service, one straight to the nodes (libpq
// multi-host, read-write): Patroni's own window. With withPgsvc false,
// pgsvc is frozen (SIGSTOP) and HAProxy's health checks alone decide, with
// Pigsty's check settings: the baseline.
func testSwitchover(t *testing.T, withPgsvc bool) {
	from := healthy(t)
	converged(t)
	to := other(from, "pg-test-3")
	if from == "pg-test-3" {
		to = "pg-test-1"
	}
	resume := func() {}
	if !withPgsvc {
		mustRun(t, "docker", "exec", haproxyContainer, "pkill", "-STOP", "-x", "pgsvc")
		resume = func() { run(t, "docker", "exec", haproxyContainer, "pkill", "-CONT", "-x", "pgsvc") }
		defer resume() // also when the test fails half-way
	}
	ctx, cancel := context.WithCancel(context.Background())
	viaHAP, viaNodes := newProbe(viaHAProxy), newProbe(direct)
	go viaHAP.run(ctx)
	go viaNodes.run(ctx)
	time.Sleep(time.Second) // a baseline of successful writes before the switchover
	begin := time.Now()
	patronictl(t, from, "switchover", "--leader", from, "--candidate", to, "--force")
	eventually(t, 60*time.Second, "writes through HAProxy and direct to succeed again", func() bool {
		return leader(t) == to && memberRole(t, to) == "master" &&
			viaHAP.succeededAfter(time.Now().Add(-300*time.Millisecond)) && viaNodes.succeededAfter(time.Now().Add(-300*time.Millisecond))
	})
	time.Sleep(time.Second)
	cancel()
	resume()
	hw, hf := viaHAP.window(begin)
	dw, df := viaNodes.window(begin)
	mode := "HAProxy + pgsvc"
	if !withPgsvc {
		mode = "HAProxy checks only (pgsvc stopped)"
	}
	windows = append(windows,
		fmt.Sprintf("%-38s %6d ms  (%d failed attempts)", mode+", through :5433", hw.Milliseconds(), hf),
		fmt.Sprintf("%-38s %6d ms  (%d failed attempts)", "direct to the nodes, same switchover", dw.Milliseconds(), df))
	t.Logf("%s: through HAProxy %s, direct %s", mode, hw, dw)
	healthy(t)
	converged(t)
	expectRoles(t, to)
	assert.Equal(t, offlineSlots(to, map[string]bool{"pg-test-3": true}), enabled(t, "offline"))
}

// offlineSlots is what Pigsty's offline selectors give when primary leads
// and the given members serve offline queries: those are active; replicas
// without offline queries are backups; a primary without them is out.
func offlineSlots(primary string, offline map[string]bool) string {
	slots := []string{}
	for _, n := range []string{"pg-test-1", "pg-test-2", "pg-test-3"} {
		switch {
		case offline[n]:
			slots = append(slots, n)
		case n != primary:
			slots = append(slots, n+".b")
		}
	}
	return strings.Join(slots, " ")
}

// A long query through :5438 on pg-test-3 survives pg-test-3 leaving the
// offline service; membership and backups follow the selectors each time.
func testOfflineToggle(t *testing.T) {
	converged(t)
	before := reloads(t)
	primary := leader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres:postgres@127.0.0.1:5438/postgres?"+dsnOptions)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var node string
	require.NoError(t, conn.QueryRow(ctx, "SELECT trim(pg_read_file('/etc/hostname'), E'\\n ')").Scan(&node))
	require.Equal(t, "pg-test-3", node, "offline routes to pg-test-3")
	long := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(8)")
		long <- err
	}()

	mustPgsvc(t, "set", "pg-test-3", "pg_offline_query=false")
	want := offlineSlots(primary, nil)
	eventually(t, 20*time.Second, "pg-test-3 to leave offline: "+want, func() bool { return enabled(t, "offline") == want })
	mustPgsvc(t, "set", "pg-test-2", "pg_offline_query=true")
	want = offlineSlots(primary, map[string]bool{"pg-test-2": true})
	eventually(t, 20*time.Second, "pg-test-2 to serve offline: "+want, func() bool { return enabled(t, "offline") == want })
	require.NoError(t, <-long, "the long query on the instance that left survived")

	mustPgsvc(t, "unset", "pg-test-2", "pg_offline_query")
	mustPgsvc(t, "unset", "pg-test-3", "pg_offline_query")
	converged(t)
	assert.Equal(t, before, reloads(t), "zero reloads")
}

func mustPgsvc(t testing.TB, args ...string) string {
	t.Helper()
	out, code := pgsvc(t, args...)
	require.Equal(t, 0, code, "pgsvc %v: %s", args, out)
	return out
}

func testWeight(t *testing.T) {
	before := reloads(t)
	mustPgsvc(t, "set", "pg-test-2", "pg_weight=30")
	eventually(t, 20*time.Second, "weight 30 on every pg-test-2 slot", func() bool {
		for _, svc := range []string{"primary", "replica", "default", "offline"} {
			b := backend(t, svc)
			if b.Slots["pg-test-2"].UWeight != 30 || b.Slots["pg-test-2.b"].UWeight != 30 {
				return false
			}
		}
		return true
	})
	out := mustRun(t, "docker", "exec", haproxyContainer, "cat", "/etc/haproxy/conf.d/pg-test-replica.cfg")
	assert.Contains(t, out, "server pg-test-2 10.10.10.12:6432 check port 8008 weight 30", "the file on disk follows")
	mustPgsvc(t, "unset", "pg-test-2", "pg_weight")
	converged(t)
	assert.Equal(t, 100, backend(t, "replica").Slots["pg-test-2"].UWeight)
	assert.Equal(t, before, reloads(t), "zero reloads")
}

// An operator previews an inventory edit with --dry-run before installing it.
func testDryRun(t *testing.T) {
	converged(t)
	mustRun(t, "docker", "exec", haproxyContainer, "sh", "-c",
		"sed 's/pg_seq: 2, pg_role: replica }/pg_seq: 2, pg_role: replica, pg_weight: 10 }/' /etc/pgsvc/inventory.yml > /tmp/edited.yml")
	out, code := pgsvc(t, "reconcile", "--dry-run", "--inventory", "/tmp/edited.yml")
	require.Equal(t, 2, code, "changes pending: %s", out)
	assert.Contains(t, out, "would run: set server pg-test-replica/pg-test-2 weight 10")
	assert.Contains(t, out, "would run: write /etc/haproxy/conf.d/pg-test-replica.cfg")
	assert.Equal(t, 100, backend(t, "replica").Slots["pg-test-2"].UWeight, "dry run changed nothing")
	_, code = pgsvc(t, "reconcile", "--dry-run")
	assert.Equal(t, 0, code, "the installed inventory still has nothing pending")
}

// With etcd stopped for 30 s HAProxy stays exactly as it is and traffic
// keeps flowing; once etcd is back pgsvc converges.
func testEtcdDown(t *testing.T) {
	converged(t)
	services := []string{"primary", "replica", "default", "offline"}
	before := map[string]string{}
	for _, s := range services {
		before[s] = enabled(t, s)
	}
	mustRun(t, "docker", "stop", etcdContainer)
	defer run(t, "docker", "start", etcdContainer)
	ctx, cancel := context.WithCancel(context.Background())
	probe := newProbe(viaHAProxy)
	go probe.run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range services {
			require.Equal(t, before[s], enabled(t, s), "HAProxy untouched while etcd is down")
		}
		time.Sleep(2 * time.Second)
	}
	cancel()
	w, failures := probe.window(deadline.Add(-30 * time.Second))
	assert.Zero(t, failures, "writes kept flowing through HAProxy (longest outage %s, last error %s)", w, probe.lastError())
	node, recovery := serverNode(t, 5434)
	assert.True(t, recovery, "reads keep flowing through the replica service (%s)", node)
	mustRun(t, "docker", "start", etcdContainer)
	eventually(t, 60*time.Second, "etcd back", func() bool { return leader(t) != "" })
	converged(t)
}

// Restarted, HAProxy comes back from the files on disk in the desired
// state (including pgsvc's live changes), and pgsvc resyncs.
func testHAProxyRestart(t *testing.T) {
	mustPgsvc(t, "set", "pg-test-2", "pg_offline_query=true", "pg_weight=40")
	converged(t)
	want := enabled(t, "offline")
	mustRun(t, "docker", "restart", haproxyContainer)
	eventually(t, 60*time.Second, "HAProxy back", func() bool {
		_, code := run(t, "docker", "exec", haproxyContainer, "sh", "-c", "echo 'show info' | socat -t 2 - UNIX-CONNECT:/run/haproxy/admin.sock | grep -q Pid")
		return code == 0
	})
	assert.Equal(t, want, enabled(t, "offline"), "desired state from disk")
	assert.Equal(t, 40, backend(t, "replica").Slots["pg-test-2"].UWeight)
	converged(t)
	mustPgsvc(t, "unset", "pg-test-2", "pg_offline_query", "pg_weight")
	converged(t)
}

// Kill the primary's container: once Patroni elects, the services follow.
func testCrash(t *testing.T) {
	primary := healthy(t)
	converged(t)
	before := reloads(t)
	mustRun(t, "docker", "kill", primary)
	var next string
	eventually(t, 90*time.Second, "Patroni to elect a new leader", func() bool {
		next = leader(t)
		return next != "" && next != primary && memberRole(t, next) == "master"
	})
	converged(t)
	for _, svc := range []string{"primary", "default"} {
		eventually(t, 30*time.Second, "new primary up in "+svc, func() bool {
			return strings.HasPrefix(backend(t, svc).Slots[next].Status, "UP")
		})
	}
	assert.Contains(t, enabled(t, "replica"), next+".b", "new primary is the replica service's backup")
	node, recovery := serverNode(t, 5433)
	assert.Equal(t, next, node)
	assert.False(t, recovery)
	assert.Equal(t, before, reloads(t), "zero reloads")
	mustRun(t, "docker", "start", primary)
	healthy(t)
	converged(t)
}
