//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	viaHAProxy = "postgres://postgres:postgres@127.0.0.1:5433/postgres?" + dsnOptions
	direct     = directTo(members...)
)

// directTo is a libpq multi-host DSN over the given members' PostgreSQL,
// read-write: the client that follows Patroni without HAProxy.
func directTo(names ...string) string {
	hosts := make([]string, len(names))
	for i, n := range names {
		hosts[i] = nodes[n] + ":5432"
	}
	return "postgres://postgres:postgres@" + strings.Join(hosts, ",") + "/postgres?target_session_attrs=read-write&" + dsnOptions
}

// windows collects the measured write-unavailable windows for the summary.
var windows []string

// TestLab runs the end-to-end scenarios in order against one lab.
//
// Zero reloads across the suite (pins a role, backup, weight, offline or
// override change that reloads HAProxy): the master `make demo` started has
// never reloaded, and after every scenario `show proc` on the master socket
// shows the same master, reload count and worker. Only the HAProxy restart
// replaces them, and the new master has not reloaded either.
func TestLab(t *testing.T) {
	healthy(t)
	converged(t)
	sqlExec(t, viaHAProxy, "CREATE TABLE IF NOT EXISTS pgsvc_probe (at timestamptz)")
	proc := masterProc(t)
	require.Zero(t, proc.Reloads, "HAProxy reloaded before the suite began: %s", proc)
	step := func(name string, f func(*testing.T)) {
		t.Run(name, f)
		if now := masterProc(t); !assert.Equal(t, proc, now, "HAProxy after %s: same master and worker, no reload (show proc)", name) {
			proc = now // report each reload once, after the scenario that caused it
		}
	}

	step("convergence", testConvergence)
	step("switchover", func(t *testing.T) { testSwitchover(t, withPgsvc) })
	step("switchover-hold-from-request", func(t *testing.T) { testSwitchover(t, holdFromRequest) })
	step("switchover-hold-off", func(t *testing.T) { testSwitchover(t, holdOff) })
	step("switchover-checks-only", func(t *testing.T) { testSwitchover(t, checksOnly) })
	step("switchover-aborted", testAbortedSwitchover)
	step("offline-toggle", testOfflineToggle)
	step("weight", testWeight)
	step("dry-run-maintenance", testDryRun)
	step("primary-cut-off-from-etcd", testPrimaryCutOff)
	step("etcd-down", testEtcdDown)
	step("fleet", testFleet)
	step("crash-failover", func(t *testing.T) { testCrash(t, true) })
	step("crash-failover-no-fence", func(t *testing.T) { testCrash(t, false) })
	step("reload-routing", func(t *testing.T) { testReloadRouting(t, &proc) })
	step("haproxy-restart", func(t *testing.T) { testHAProxyRestart(t, &proc) })
	t.Logf("HAProxy at the end: %s", proc)

	fmt.Println("\nwrite-unavailable windows (same run, same cluster):")
	for _, w := range windows {
		fmt.Println("  " + w)
	}
	fmt.Println("\nthe fleet (four agents: the proxy's and one on each node):")
	for _, f := range fleetTimes {
		fmt.Println("  " + f)
	}
	fmt.Println("\nnew sessions through :5433 (one every 20 ms, 1 s before the reload to 3 s after its new worker):")
	for _, r := range routing {
		fmt.Println("  " + r)
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

// expectLive asserts that HAProxy follows Pigsty's selectors with primary
// leading and no overrides: replica has every other member active and the
// primary as its backup, primary and default enable every member (checks
// decide), offline is the inventory's offline members plus the replicas as
// backups. dead is a crashed member ("" for none): its slots stay enabled
// where its role puts them, but no service may route to it. Then it checks
// what takes traffic (enabled and UP) and where queries through HAProxy land.
func expectLive(t *testing.T, primary, dead string) {
	t.Helper()
	replica := []string{primary + ".b"}
	up := []string{primary + ".b"}
	var live []string
	for _, n := range members {
		if n == primary {
			continue
		}
		replica = append(replica, n)
		if n != dead {
			up = append(up, n)
			live = append(live, n)
		}
	}
	sort.Strings(replica)
	sort.Strings(up)
	all := strings.Join(members, " ")
	for _, svc := range []struct{ name, want string }{
		{"primary", all}, {"default", all},
		{"replica", strings.Join(replica, " ")},
		{"offline", offlineSlots(primary, inventoryOffline)},
	} {
		everyHAProxy(t, 30*time.Second, fmt.Sprintf("enabled slots of %s with %s leading", svc.name, primary), svc.want,
			func(c string) string { return enabledOn(t, c, svc.name) })
	}
	for _, svc := range []struct{ name, want string }{
		{"primary", primary}, {"default", primary}, {"replica", strings.Join(up, " ")},
	} {
		everyHAProxy(t, 60*time.Second, fmt.Sprintf("slots of %s taking traffic (enabled, UP)", svc.name), svc.want,
			func(c string) string { return servingOn(t, c, svc.name) })
	}
	for _, port := range []int{5433, 5436} {
		waitEqual(t, 30*time.Second, fmt.Sprintf("port %d to reach the primary", port), primary+" primary",
			func() string { return route(t, port) })
	}
	// Waited for, not asserted at once: after a switchover pgbouncer 1.24
	// (trixie) on the demoted node answers every login with the error it
	// cached while its PostgreSQL restarted ("server login has been
	// failing", server_login_retry: 15 s by default, as in Pigsty) although
	// Patroni's /replica, HAProxy's check, already says 200.
	eventually(t, 30*time.Second, "the replica service to reach a live replica", func() bool {
		node, recovery := serverNode(t, 5434)
		return recovery && slices.Contains(live, node)
	})
}

// route is "<node> primary|replica" for a query through a service port.
func route(t testing.TB, port int) string {
	node, recovery := serverNode(t, port)
	if recovery {
		return node + " replica"
	}
	return node + " primary"
}

func testConvergence(t *testing.T) {
	primary := healthy(t)
	out, code := pgsvc(t, "status")
	require.Equal(t, 0, code, out)
	assert.NotContains(t, out, "differ from the desired state", out)
	expectLive(t, primary, "")
}

// switchoverMode is what routes the primary service through a switchover.
type switchoverMode int

const (
	withPgsvc       switchoverMode = iota // pgsvc as configured: holds on HAProxy >= 3.0, from Patroni's before_stop
	holdFromRequest                       // pgsvc holding from the request (hold_from: request, SIGHUP)
	holdOff                               // pgsvc with hold_connections: false (SIGHUP)
	checksOnly                            // pgsvc frozen: HAProxy's health checks alone, as with Pigsty
)

func (m switchoverMode) String() string {
	return [...]string{"HAProxy + pgsvc", "HAProxy + pgsvc, holding from the request", "HAProxy + pgsvc, holding off", "HAProxy checks only (pgsvc stopped)"}[m]
}

// testSwitchover runs a planned switchover while two probes write: one
// through HAProxy's primary service, one straight to the nodes (libpq
// multi-host, read-write): Patroni's own window. Both start a new
// connection every 20 ms, each willing to wait 7 s (above hold_max) for
// it. With pgsvc on HAProxy >= 3.0 new connections are held through the
// switchover: not one attempt through HAProxy fails (a read-only error
// counts). holdOff turns holding off through SIGHUP for this switchover;
// checksOnly freezes pgsvc (SIGSTOP): HAProxy's checks alone, with
// Pigsty's settings, the baseline.
func testSwitchover(t *testing.T, mode switchoverMode) {
	holds := labHolds(t)
	if (mode == holdOff || mode == holdFromRequest) && !holds {
		t.Logf("%s: pgsvc never holds here, so %s is the switchover step itself", stack, mode)
		return
	}
	from := healthy(t)
	converged(t)
	to := other(from, "pg-test-3")
	if from == "pg-test-3" {
		to = "pg-test-1"
	}
	resume := func() {}
	switch mode {
	case checksOnly:
		mustRun(t, "docker", "exec", haproxyContainer, "pkill", "-STOP", "-x", "pgsvc")
		resume = func() { run(t, "docker", "exec", haproxyContainer, "pkill", "-CONT", "-x", "pgsvc") }
	case holdOff:
		setHolding(t, false)
		resume = func() { setHolding(t, true) }
	case holdFromRequest:
		setConfig(t, "hold_from", "request")
		resume = func() { setConfig(t, "hold_from", "before_stop") }
	}
	defer resume() // also when the test fails half-way
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	viaHAP, viaNodes := startProbes(t, ctx, newPatientProbe, viaHAProxy, direct)
	begin := time.Now()
	patronictl(t, from, "switchover", "--leader", from, "--candidate", to, "--force")
	eventually(t, 60*time.Second, "writes through HAProxy and direct to succeed again", func() bool {
		return leader(t) == to && memberRole(t, to) == "primary" &&
			viaHAP.succeededAfter(time.Now().Add(-300*time.Millisecond)) && viaNodes.succeededAfter(time.Now().Add(-300*time.Millisecond))
	})
	time.Sleep(500 * time.Millisecond) // the attempts in flight finish
	cancel()
	resume()
	resume = func() {}
	hw, hf := viaHAP.window(begin)
	dw, df := viaNodes.window(begin)
	hl, dl := viaHAP.longestWait(begin), viaNodes.longestWait(begin)
	windows = append(windows,
		fmt.Sprintf("%-52s %6d ms  (%d failed attempts, longest wait %d ms)", mode.String()+", through :5433", hw.Milliseconds(), hf, hl.Milliseconds()),
		fmt.Sprintf("%-52s %6d ms  (%d failed attempts, longest wait %d ms)", "direct to the nodes, same switchover", dw.Milliseconds(), df, dl.Milliseconds()))
	t.Logf("%s: through HAProxy %s (%d failed, longest wait %s), direct %s (%d failed, longest wait %s)", mode, hw, hf, hl, dw, df, dl)
	if mode == withPgsvc {
		stop := hookTime(t, from, "/pg/before-stop.log")
		out, _ := run(t, "docker", "exec", from, "tail", "-8", "/pg/before-stop.out")
		windows = append(windows, fmt.Sprintf("%-52s %s", "  Patroni's before_stop (pgsvc before-stop) on "+from, stop))
		t.Logf("before_stop on %s: %s\n%s", from, stop, out)
	}
	if mode == holdOff {
		out, _ := run(t, "docker", "logs", "--since", begin.Format(time.RFC3339Nano), haproxyContainer)
		assert.NotContains(t, out, "holding new connections on the primary services", "holding is off")
	}
	if (mode == withPgsvc || mode == holdFromRequest) && holds {
		assert.Zero(t, hf, "no connection attempt through HAProxy fails while pgsvc holds new connections (last error: %s)", viaHAP.lastError())
		out, _ := run(t, "docker", "logs", "--since", begin.Add(-time.Second).Format(time.RFC3339Nano), haproxyContainer)
		assert.Contains(t, out, "holding new connections on the primary services")
		assert.Contains(t, out, "result=released")
	}
	healthy(t)
	converged(t)
	expectLive(t, to, "")
}

// labHolds reports whether pgsvc holds connections in this lab: HAProxy >= 3.0.
func labHolds(t testing.TB) bool {
	t.Helper()
	out := mustRun(t, "docker", "exec", haproxyContainer, "haproxy", "-v")
	var major int
	f := strings.Fields(out) // HAProxy version 3.0.11-1+deb13u5 ...
	if len(f) < 3 {
		t.Fatalf("haproxy -v: %q", out)
	}
	if _, err := fmt.Sscanf(f[2], "%d.", &major); err != nil {
		t.Fatalf("haproxy -v: %q: %v", out, err)
	}
	return major >= 3
}

// setHolding turns the daemon's switchover hold on or off the way an
// operator does: edit the config file, SIGHUP.
func setHolding(t testing.TB, on bool) { setConfig(t, "hold_connections", fmt.Sprint(on)) }

// setConfig sets one of the proxy's pgsvc settings the way an operator
// does: edit the config file, SIGHUP.
func setConfig(t testing.TB, key, value string) {
	t.Helper()
	mustRun(t, "docker", "exec", haproxyContainer, "sed", "-i", fmt.Sprintf("s/^%s:.*/%s: %s/", key, key, value), "/etc/pgsvc/pgsvc.yml")
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	mustRun(t, "docker", "kill", "-s", "HUP", haproxyContainer)
	eventually(t, 10*time.Second, "pgsvc to re-read its config (SIGHUP)", func() bool {
		out, _ := run(t, "docker", "logs", "--since", since, haproxyContainer)
		return strings.Contains(out, "SIGHUP: re-reading the inventory")
	})
	out, _ := run(t, "docker", "logs", "--since", since, haproxyContainer)
	require.NotContains(t, out, "SIGHUP: config rejected", "the edited config is valid")
}

// startProbes starts a probe per DSN (made by probe: newProbe, or
// newPatientProbe for clients that wait) and returns once each has
// written: the baseline before the event under test.
func startProbes(t *testing.T, ctx context.Context, probe func(string) *writeProbe, dsns ...string) (*writeProbe, *writeProbe) {
	t.Helper()
	began := time.Now()
	a, b := probe(dsns[0]), probe(dsns[1])
	go a.run(ctx)
	go b.run(ctx)
	eventually(t, 20*time.Second, "a baseline of successful writes", func() bool {
		return a.succeededAfter(began) && b.succeededAfter(began)
	})
	return a, b
}

// offlineSlots is what Pigsty's offline selectors give when primary leads
// and the given members serve offline queries: those are active; replicas
// without offline queries are backups; a primary without them is out.
func offlineSlots(primary string, offline map[string]bool) string {
	slots := []string{}
	for _, n := range members {
		switch {
		case offline[n]:
			slots = append(slots, n)
		case n != primary:
			slots = append(slots, n+".b")
		}
	}
	return strings.Join(slots, " ")
}

// A long query through :5438 on pg-test-3 is still running after HAProxy
// has moved pg-test-3 to a backup slot (its active slot drains) and after
// pg-test-2 took over, then completes; membership and backups follow the
// selectors each time, and unsetting both overrides restores the
// inventory's static view in HAProxy. Pins an offline change that kills
// sessions (maint, shutdown-sessions, a reload) instead of draining them.
func testOfflineToggle(t *testing.T) {
	lead(t, inventoryPrimary) // the static view has the inventory's primary leading
	static := staticEnabled(t, "offline")
	require.Equal(t, offlineSlots(inventoryPrimary, inventoryOffline), static,
		"pgsvc render: pg-test-3 serves offline queries, pg-test-2 backs it up")
	require.Equal(t, static, enabled(t, "offline"))

	t.Cleanup(func() { // when the test fails half-way; a no-op otherwise
		pgsvc(t, "unset", "pg-test-2", "pg_offline_query")
		pgsvc(t, "unset", "pg-test-3", "pg_offline_query")
	})
	q := startLongQuery(t)
	mustPgsvc(t, "set", "pg-test-3", "pg_offline_query=false")
	everyHAProxy(t, 20*time.Second, "pg-test-3 to become an offline backup", offlineSlots(inventoryPrimary, nil),
		func(c string) string { return enabledOn(t, c, "offline") })
	q.stillRunning(t, "pg-test-3 moved to the offline service's backups")

	mustPgsvc(t, "set", "pg-test-2", "pg_offline_query=true")
	everyHAProxy(t, 20*time.Second, "pg-test-2 to serve offline queries", offlineSlots(inventoryPrimary, map[string]bool{"pg-test-2": true}),
		func(c string) string { return enabledOn(t, c, "offline") })
	q.stillRunning(t, "pg-test-2 took over the offline service")
	waitEqual(t, 20*time.Second, "new offline sessions to reach pg-test-2", "pg-test-2 replica",
		func() string { return route(t, 5438) })
	q.finish(t)

	mustPgsvc(t, "unset", "pg-test-2", "pg_offline_query")
	mustPgsvc(t, "unset", "pg-test-3", "pg_offline_query")
	everyHAProxy(t, 20*time.Second, "offline back to the inventory's static view", static,
		func(c string) string { return enabledOn(t, c, "offline") })
	waitEqual(t, 20*time.Second, "new offline sessions to reach pg-test-3 again", "pg-test-3 replica",
		func() string { return route(t, 5438) })
	converged(t)
}

// longQuery is a query through :5438 that runs until the test releases it:
// it waits for an advisory lock that a direct session on pg-test-3 holds
// (advisory locks work on a standby), so whether it is still running never
// depends on how long the steps in between take.
type longQuery struct {
	gate   *pgx.Conn // direct to pg-test-3, holds the lock
	conn   *pgx.Conn // through :5438
	pid    int32     // the long query's backend on pg-test-3
	cancel context.CancelFunc
	done   chan error
	result string
}

const longQueryLock = 4242

// startLongQuery starts the query and returns once pg-test-3 shows it
// running (waiting for the lock).
func startLongQuery(t *testing.T) *longQuery {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	q := &longQuery{cancel: cancel, done: make(chan error, 1)}
	var err error
	q.gate, err = pgx.Connect(ctx, "postgres://postgres:postgres@"+nodes["pg-test-3"]+":5432/postgres?"+dsnOptions)
	require.NoError(t, err)
	t.Cleanup(func() { q.close() })
	_, err = q.gate.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", longQueryLock))
	require.NoError(t, err)

	q.conn, err = pgx.Connect(ctx, "postgres://postgres:postgres@127.0.0.1:5438/postgres?"+dsnOptions)
	require.NoError(t, err)
	var node string
	require.NoError(t, q.conn.QueryRow(ctx, "SELECT trim(pg_read_file('/etc/hostname'), E'\\n '), pg_backend_pid()").Scan(&node, &q.pid))
	require.Equal(t, "pg-test-3", node, "offline routes to pg-test-3")
	go func() {
		q.done <- q.conn.QueryRow(ctx, fmt.Sprintf("SELECT 'completed' FROM pg_advisory_xact_lock_shared(%d)", longQueryLock)).Scan(&q.result)
	}()
	eventually(t, 10*time.Second, "the long query to run on pg-test-3", func() bool { return q.activity(t) == "active Lock" })
	require.Equal(t, 1, sessions(t, "offline", "pg-test-3"), "the long query's session is on slot pg-test-offline/pg-test-3")
	return q
}

// activity is the long query's backend "state wait_event_type" in
// pg_stat_activity on pg-test-3.
func (q *longQuery) activity(t *testing.T) string {
	t.Helper()
	var state, wait string
	err := q.gate.QueryRow(context.Background(),
		fmt.Sprintf("SELECT coalesce(state, ''), coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = %d", q.pid)).Scan(&state, &wait)
	if errors.Is(err, pgx.ErrNoRows) {
		return "gone"
	}
	require.NoError(t, err)
	return state + " " + wait
}

// stillRunning asserts that the query has not returned, that its backend
// on pg-test-3 still runs it, and that HAProxy still holds its session on
// the drained slot pg-test-3.
func (q *longQuery) stillRunning(t *testing.T, when string) {
	t.Helper()
	select {
	case err := <-q.done:
		q.done <- err
		t.Fatalf("the long query returned once %s (%v)", when, err)
	default:
	}
	assert.Equal(t, "active Lock", q.activity(t), "the long query runs on pg-test-3 once %s", when)
	b := backend(t, "offline")
	assert.Equal(t, dataplaneapi.AdminDrain, b.Slots["pg-test-3"].Admin, "slot pg-test-3 drains once %s", when)
	assert.Equal(t, 1, sessions(t, "offline", "pg-test-3"), "HAProxy keeps the session on slot pg-test-3 once %s", when)
}

// finish releases the lock; the query must complete and its session stay
// usable.
func (q *longQuery) finish(t *testing.T) {
	t.Helper()
	_, err := q.gate.Exec(context.Background(), fmt.Sprintf("SELECT pg_advisory_unlock(%d)", longQueryLock))
	require.NoError(t, err)
	select {
	case err := <-q.done:
		q.done <- err // for close
		require.NoError(t, err, "the long query on the instance that left completes")
	case <-time.After(30 * time.Second):
		t.Fatal("the long query did not return within 30s of the lock's release")
	}
	assert.Equal(t, "completed", q.result)
	_, err = q.conn.Exec(context.Background(), "SELECT 1")
	assert.NoError(t, err, "the session through the drained slot is still open")
}

func (q *longQuery) close() {
	q.cancel()
	if q.gate != nil {
		q.gate.Close(context.Background())
	}
	if q.conn != nil {
		select {
		case <-q.done: // returned, or canceled above
		case <-time.After(10 * time.Second):
		}
		q.conn.Close(context.Background())
	}
}

func mustPgsvc(t testing.TB, args ...string) string {
	t.Helper()
	out, code := pgsvc(t, args...)
	require.Equal(t, 0, code, "pgsvc %v: %s", args, out)
	return out
}

func testWeight(t *testing.T) {
	mustPgsvc(t, "set", "pg-test-2", "pg_weight=30")
	weights := func(c string) string {
		var w []string
		for _, svc := range []string{"primary", "replica", "default", "offline"} {
			b := backendOn(t, c, svc)
			w = append(w, fmt.Sprintf("%s:%d/%d", svc, b.Slots["pg-test-2"].UWeight, b.Slots["pg-test-2.b"].UWeight))
		}
		return strings.Join(w, " ")
	}
	everyHAProxy(t, 20*time.Second, "weight 30 on every pg-test-2 slot", "primary:30/30 replica:30/30 default:30/30 offline:30/30", weights)
	out := mustRun(t, "docker", "exec", haproxyContainer, "cat", "/etc/haproxy/conf.d/pg-test-replica.cfg")
	assert.Contains(t, out, "server pg-test-2 10.10.10.12:6432 check port 8008 weight 30", "the file on disk follows")
	mustPgsvc(t, "unset", "pg-test-2", "pg_weight")
	converged(t)
	everyHAProxy(t, 20*time.Second, "weight 100 again", "primary:100/100 replica:100/100 default:100/100 offline:100/100", weights)
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
// state (including pgsvc's live changes), and pgsvc resyncs without a
// reload. proc becomes the new master's `show proc`.
func testHAProxyRestart(t *testing.T, proc *haproxyProc) {
	mustPgsvc(t, "set", "pg-test-2", "pg_offline_query=true", "pg_weight=40")
	converged(t)
	want := enabled(t, "offline")
	mustRun(t, "docker", "restart", haproxyContainer)
	eventually(t, 60*time.Second, "HAProxy back", func() bool {
		out, code := run(t, "docker", "exec", haproxyContainer, "lab-haproxy-cli", "admin", "show info")
		return code == 0 && strings.Contains(out, "Pid:")
	})
	*proc = masterProc(t)
	assert.Zero(t, proc.Reloads, "a restarted HAProxy is not reloaded by pgsvc's resync: %s", proc)
	assert.Equal(t, want, enabled(t, "offline"), "desired state from disk")
	assert.Equal(t, 40, backend(t, "replica").Slots["pg-test-2"].UWeight)
	converged(t)
	mustPgsvc(t, "unset", "pg-test-2", "pg_offline_query", "pg_weight")
	converged(t)
	expectLive(t, healthy(t), "")
}

// Kill the primary's container: once Patroni elects, the services follow
// as after a planned switchover, and nothing routes to the dead member.
// Started again, it rejoins as a replica and takes replica traffic.
// testCrash kills the primary's node. With fence, the new leader's
// pre_promote (lab-fence: pgsvc fence) waits until every HAProxy shows it
// alone in the primary services; without, /pg/fence-off skips it. The
// windows of both are in the summary, with how long fencing took.
func testCrash(t *testing.T, fence bool) {
	primary := healthy(t)
	converged(t)
	for _, n := range members { // this crash's pre_promote only
		mustRun(t, "docker", "exec", "-u", "postgres", n, "sh", "-c", ": >/pg/fence.log; : >/pg/fence.out") // Patroni's user writes them
	}
	if !fence {
		for _, n := range members {
			mustRun(t, "docker", "exec", n, "touch", "/pg/fence-off")
		}
		defer func() {
			for _, n := range members {
				run(t, "docker", "exec", n, "rm", "-f", "/pg/fence-off")
			}
		}()
	}
	// The direct client tries the survivors first, so the dead host costs it
	// nothing once one of them is promoted.
	var order []string
	for _, n := range members {
		if n != primary {
			order = append(order, n)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	viaHAP, viaNodes := startProbes(t, ctx, newProbe, viaHAProxy, directTo(append(order, primary)...))
	begin := time.Now()
	mustRun(t, "docker", "kill", primary)
	defer run(t, "docker", "start", primary) // also when the test fails half-way
	var next string
	eventually(t, 120*time.Second, "Patroni to elect a new leader and writes to succeed again", func() bool {
		next = leader(t)
		return next != "" && next != primary && memberRole(t, next) == "primary" &&
			viaHAP.succeededAfter(time.Now().Add(-300*time.Millisecond)) && viaNodes.succeededAfter(time.Now().Add(-300*time.Millisecond))
	})
	cancel()
	hw, hf := viaHAP.window(begin)
	dw, df := viaNodes.window(begin)
	fenced := fenceTime(t, next)
	windows = append(windows,
		fmt.Sprintf("%-52s %6d ms  (%d failed attempts; fence in pre_promote: %s)", "crash (docker kill), HAProxy + pgsvc", hw.Milliseconds(), hf, fenced),
		fmt.Sprintf("%-52s %6d ms  (%d failed attempts)", "direct to the nodes, same crash", dw.Milliseconds(), df))
	t.Logf("crash failover %s -> %s: through HAProxy %s, direct %s; fence in pre_promote: %s", primary, next, hw, dw, fenced)
	if fence {
		assert.Regexp(t, `^\d+ ms, exit 0$`, fenced, "pre_promote ran pgsvc fence, which confirmed or gave up (availability first)")
		out, _ := run(t, "docker", "exec", next, "tail", "-5", "/pg/fence.out")
		assert.Contains(t, out, "pg-test fenced on all ", "every live agent confirmed:\n%s", out)
	}
	converged(t)
	expectLive(t, next, primary)

	mustRun(t, "docker", "start", primary)
	healthy(t)
	assert.Equal(t, "replica", memberRole(t, primary), "%s rejoins as a replica", primary)
	converged(t)
	expectLive(t, next, "") // its replica slot enabled and UP, next still leads
}

// testAbortedSwitchover schedules a switchover that Patroni then gives up:
// the candidate's Patroni is frozen (SIGSTOP) right after the request was
// accepted, so at scheduled_at the leader finds no healthy candidate and
// clears the request. (An immediate switchover to a frozen candidate is
// refused before Patroni writes the request: nothing to hold.) pgsvc holds
// at scheduled_at and releases on the abort, or at hold_max if Patroni's
// next HA loop comes later; no connection attempt through HAProxy fails:
// held clients are served by the primary that stayed.
func testAbortedSwitchover(t *testing.T) {
	if !labHolds(t) {
		t.Logf("%s: pgsvc never holds here, nothing to abort", stack)
		return
	}
	primary := healthy(t)
	converged(t)
	candidate := other(primary, "pg-test-1")
	// The proxy holds from the request, so there is a hold to abort; the
	// nodes' agents hold from Patroni's before_stop, which an aborted
	// switchover never runs: they hold nothing.
	setConfig(t, "hold_from", "request")
	defer setConfig(t, "hold_from", "before_stop")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probe := newPatientProbe(viaHAProxy)
	go probe.run(ctx)
	eventually(t, 20*time.Second, "a baseline of successful writes", func() bool { return probe.succeededAfter(time.Now().Add(-time.Second)) })
	begin := time.Now()
	at := begin.Add(4 * time.Second).UTC().Format("2006-01-02T15:04:05-07:00")
	out := patronictl(t, primary, "switchover", "--leader", primary, "--candidate", candidate, "--scheduled", at, "--force")
	t.Logf("patronictl switchover --scheduled %s: %s", at, strings.TrimSpace(out[strings.LastIndex(out, "+")+1:]))
	mustRun(t, "docker", "exec", candidate, "pkill", "-STOP", "-f", "/usr/bin/patroni")
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			run(t, "docker", "exec", candidate, "pkill", "-CONT", "-f", "/usr/bin/patroni")
		}
	}
	defer thaw()
	var held, cleared, released time.Time
	eventually(t, 60*time.Second, "a hold, the request cleared and the primary services accepting again", func() bool {
		mc := frontendMaxconn(t, "primary")
		if held.IsZero() && mc == 0 {
			held = time.Now()
		}
		if cleared.IsZero() && !failoverPending(t) {
			cleared = time.Now()
		}
		if !held.IsZero() && released.IsZero() && mc != 0 {
			released = time.Now()
		}
		return !cleared.IsZero() && !released.IsZero()
	})
	time.Sleep(500 * time.Millisecond) // the attempts in flight finish
	cancel()
	thaw()
	logs, _ := run(t, "docker", "logs", "--since", begin.Add(-time.Second).Format(time.RFC3339Nano), haproxyContainer)
	_, failed := probe.window(begin)
	assert.Zero(t, failed, "no connection attempt through HAProxy fails across an aborted switchover (last error: %s)", probe.lastError())
	assert.Equal(t, primary, leader(t), "the switchover did not happen")
	nodeLogs, _ := run(t, "docker", "logs", "--since", begin.Add(-time.Second).Format(time.RFC3339Nano), primary)
	assert.NotContains(t, nodeLogs, "holding new connections", "%s's agent (hold_from: before_stop) holds nothing: Patroni never stopped it", primary)
	result := ""
	for _, line := range strings.Split(logs, "\n") {
		if i := strings.Index(line, "result="); i >= 0 && strings.Contains(line, "released held connections") {
			result = line[i:]
		}
	}
	assert.True(t, strings.HasPrefix(result, "result=aborted") || strings.HasPrefix(result, "result=hold_max"),
		"the hold that started ends on the abort (or at hold_max, if Patroni's HA loop comes later), with its result logged: %q\n%s", result, logs)
	windows = append(windows, fmt.Sprintf("%-52s %6d ms  (%d failed attempts, longest wait %d ms; held %d ms after the request, released %+d ms from the request's clearing; %s)",
		"aborted switchover, HAProxy + pgsvc, through :5433", 0, failed, probe.longestWait(begin).Milliseconds(),
		held.Sub(begin).Milliseconds(), released.Sub(cleared).Milliseconds(), result))
	t.Logf("aborted switchover: %d failed, longest wait %s, held %s after the request, released %s from its clearing; %s",
		failed, probe.longestWait(begin), held.Sub(begin), released.Sub(cleared), result)
	healthy(t)
	converged(t)
}

// failoverPending reports whether Patroni's failover key names a request.
func failoverPending(t testing.TB) bool {
	t.Helper()
	out, _ := run(t, "docker", "exec", etcdContainer, "etcdctl", "--endpoints=http://127.0.0.1:2379",
		"get", "/pg/pg-test/failover", "--print-value-only")
	return strings.Contains(out, `"leader"`) || strings.Contains(out, `"member"`)
}

// frontendMaxconn is a service frontend's maxconn as HAProxy shows it.
func frontendMaxconn(t testing.TB, service string) int {
	t.Helper()
	fe, err := dataplaneapi.ParseFrontends(mustRun(t, "docker", "exec", haproxyContainer, "lab-haproxy-cli", "admin", dataplaneapi.FrontendsLine))
	require.NoError(t, err)
	f, ok := fe["pg-test-"+service]
	require.True(t, ok, "frontend pg-test-%s", service)
	return f.Maxconn
}
