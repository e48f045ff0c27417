package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile/fleet"
)

// fleetLab is one cluster served by several pgsvc daemons (processes),
// each with its own real HAProxy, all on one real etcd, as Pigsty runs
// HAProxy on every node.
type fleetLab struct {
	etcd    *local.Etcd
	members map[string]*local.Member
	agents  map[string]*fleetAgent
	bin     string
	patroni *local.Patroni
	ttl     time.Duration // the agents' agent_ttl
	extra   []string      // more flags for every agent
}

type fleetAgent struct {
	name    string
	hap     *local.HAProxy
	inv     string
	replica int // the replica service's port on this HAProxy
	d       *daemon
}

func newFleetLab(t *testing.T, ttl time.Duration, agents ...string) *fleetLab {
	t.Helper()
	return newFleetLabWith(t, ttl, nil, agents...)
}

// newFleetLabWith is newFleetLab with more flags for every agent.
func newFleetLabWith(t *testing.T, ttl time.Duration, extra []string, agents ...string) *fleetLab {
	t.Helper()
	l := &fleetLab{etcd: local.StartEtcd(t), members: map[string]*local.Member{}, agents: map[string]*fleetAgent{}, ttl: ttl, extra: extra}
	addrs := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("pg-test-%d", i)
		l.members[name] = local.StartMember(t, fmt.Sprintf("127.0.0.1%d", i), i == 1)
		addrs[name] = l.members[name].Addr
	}
	cli := l.etcd.Client()
	t.Cleanup(func() { cli.Close() })
	l.patroni = local.NewPatroni(t, cli, "/pg/", "pg-test", addrs)
	l.patroni.Steady("pg-test-1", "pg-test-1", "pg-test-2", "pg-test-3")
	l.bin = filepath.Join(t.TempDir(), "pgsvc")
	out, err := exec.Command("go", "build", "-o", l.bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, name := range agents {
		a := &fleetAgent{name: name, hap: local.NewHAProxy(t), replica: local.FreePort(t, "127.0.0.1")}
		a.inv = writeFile(t, t.TempDir(), "inventory.yml", l.inventory(local.FreePort(t, "127.0.0.1"), a.replica))
		code, _, stderr := runCLI(t, "render", "--inventory", a.inv, "--out", a.hap.ConfDir)
		require.Equal(t, 0, code, stderr)
		a.hap.Start()
		l.agents[name] = a
		l.start(t, a)
	}
	return l
}

// inventory is the cluster with its services on this HAProxy's ports.
func (l *fleetLab) inventory(primary, replica int) string {
	var b strings.Builder
	b.WriteString("all:\n  children:\n    pg-test:\n      hosts:\n")
	for i := 1; i <= 3; i++ {
		m := l.members[fmt.Sprintf("pg-test-%d", i)]
		fmt.Fprintf(&b, "        %s: { pg_seq: %d, pg_role: %s, pg_port: %d, pgbouncer_port: %d, patroni_port: %d }\n",
			m.Addr, i, map[bool]string{true: "primary", false: "replica"}[i == 1], m.Port, m.Port, m.CheckPort)
	}
	fmt.Fprintf(&b, `      vars:
        pg_cluster: pg-test
        pg_default_services:
          - { name: primary, ip: 127.0.0.1, port: %d, dest: default, check: /primary, selector: "[]" }
          - { name: replica, ip: 127.0.0.1, port: %d, dest: default, check: /read-only, selector: "[]", backup: "[? pg_role == `+"`primary`"+`]" }
`, primary, replica)
	return b.String()
}

func (l *fleetLab) start(t *testing.T, a *fleetAgent) {
	t.Helper()
	d := &daemon{cmd: exec.Command(l.bin, append([]string{"run", "--agent-name", a.name, "--agent-ttl", l.ttl.String(), "--metrics-listen", ""}, a.flags(l)...)...),
		logs: &local.LogBuffer{}}
	d.cmd.Stderr = d.logs
	require.NoError(t, d.cmd.Start())
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGCONT)
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("pgsvc %s log:\n%s", a.name, d.logs.String())
		}
	})
	a.d = d
}

// weight is a server's weight as this agent's HAProxy shows it (show
// servers state: srv_uweight is the eighth field).
func (a *fleetAgent) weight(t *testing.T, backend, server string) string {
	t.Helper()
	for _, line := range strings.Split(a.hap.Exec("show servers state "+backend), "\n") {
		if f := strings.Fields(line); len(f) > 7 && f[3] == server {
			return f[7]
		}
	}
	t.Fatalf("%s: no server %s/%s", a.name, backend, server)
	return ""
}

func (a *fleetAgent) flags(l *fleetLab) []string {
	return append([]string{"--inventory", a.inv, "--etcd", l.etcd.Endpoint, "--haproxy-socket", a.hap.StatsSocket,
		"--haproxy-conf-dir", a.hap.ConfDir, "--haproxy-config", a.hap.GlobalConfig, "--haproxy-reload", "master:" + a.hap.MasterSocket}, l.extra...)
}

// cli runs a one-shot command as an operator on a1's node would.
func (l *fleetLab) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, append(args, "--inventory", l.agents["a1"].inv, "--etcd", l.etcd.Endpoint)...)
}

// fleetStatus is `status --fleet -o json`.
func (l *fleetLab) fleetStatus(t *testing.T) map[string]fleetRow {
	t.Helper()
	code, out, stderr := l.cli(t, "status", "--fleet", "-o", "json")
	require.Equal(t, 0, code, stderr)
	var st struct {
		Agents []fleetRow `json:"agents"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	rows := map[string]fleetRow{}
	for _, r := range st.Agents {
		rows[r.Node] = r
	}
	return rows
}

// Four agents serve one cluster: the fleet view lists them; set --wait
// returns once every HAProxy shows the change; an agent that dies is
// reported gone, one that is stuck is named on timeout; drain --wait
// waits for the last session through a drained instance; the primary is
// not drained without --force.
func TestFleet(t *testing.T) {
	l := newFleetLab(t, 2*time.Second, "a1", "a2", "a3", "a4")
	require.Eventually(t, func() bool {
		rows := l.fleetStatus(t)
		if len(rows) != 4 {
			return false
		}
		for _, r := range rows {
			if !r.Ready || len(r.Behind) > 0 || r.HAProxy == "" {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "four agents registered, ready and current")
	// An idle agent writes nothing: its record changes only with news
	// (the sampler offers a record every second; a keepalive is no write).
	cli := l.etcd.Client()
	defer cli.Close()
	wctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var writes int
	for resp := range cli.Watch(wctx, "/pgsvc/agents/a1") {
		writes += len(resp.Events)
	}
	assert.Zero(t, writes, "an idle agent's record is not rewritten")
	code, out, stderr := l.cli(t, "status", "--fleet")
	require.Equal(t, 0, code, stderr)
	t.Logf("status --fleet:\n%s", out)
	assert.Regexp(t, `(?m)^a2\s+\S+\s+\S+.*\s+pg-test\s+current\s+yes\s+-\s+-`, out)
	assert.Contains(t, out, "4 agents, etcd revision ")

	t.Run("set --wait: every agent confirms", func(t *testing.T) {
		began := time.Now()
		code, out, stderr := l.cli(t, "set", "pg-test-2", "pg_weight=50", "--wait", "--timeout", "20s")
		took := time.Since(began)
		require.Equal(t, 0, code, "%s%s", out, stderr)
		t.Logf("set --wait with 4 agents on loopback: %s from the command's start to the last confirmation\n%s", took.Round(time.Millisecond), out)
		assert.Contains(t, out, "all 4 live agents serving pg-test applied revision ")
		for _, a := range []string{"a1", "a2", "a3", "a4"} {
			assert.Regexp(t, `  `+a+`: applied \(revision \d+\)`, out)
			assert.Equal(t, "50", l.agents[a].weight(t, "pg-test-replica", "pg-test-2"), "%s: the weight is in HAProxy when set returns", a)
		}
	})

	t.Run("a stuck agent is named on timeout", func(t *testing.T) {
		d := l.agents["a2"].d
		require.NoError(t, d.cmd.Process.Signal(syscall.SIGSTOP)) // frozen: registered (TTL 2s) but applying nothing
		defer func() { require.NoError(t, d.cmd.Process.Signal(syscall.SIGCONT)) }()
		type result struct {
			code        int
			out, stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, out, stderr := runCLI(t, "set", "pg-test-2", "pg_weight=60", "--wait", "--timeout", "1s",
				"--inventory", l.agents["a1"].inv, "--etcd", l.etcd.Endpoint)
			done <- result{code, out, stderr}
		}()
		// While set waits (a2's lease outlives the 1s wait, not much more):
		// status --fleet names a2 behind, with both revisions.
		var latest int64
		require.Eventually(t, func() bool {
			rows := l.fleetStatus(t)
			latest = rows["a2"].Behind["pg-test"]
			return latest > 0 && len(rows["a1"].Behind) == 0
		}, time.Second, 20*time.Millisecond, "a2 behind, a1 current")
		code, fleetOut, stderr := l.cli(t, "status", "--fleet")
		require.Equal(t, 0, code, stderr)
		assert.Regexp(t, fmt.Sprintf(`(?m)^a2\s.*\spg-test\s+behind: pg-test \d+ < %d\s+yes\s`, latest), fleetOut, "the frozen agent's last record says ready")
		assert.Regexp(t, `(?m)^a1\s.*\spg-test\s+current\s+yes\s`, fleetOut)
		t.Logf("status --fleet with a2 frozen:\n%s", fleetOut)
		res := <-done
		code, out, stderr := res.code, res.out, res.stderr
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, fmt.Sprintf("to apply etcd revision %d ", latest), "behind the revision set waited for")
		assert.Contains(t, out, "  a1: applied")
		assert.Contains(t, stderr, "not every HAProxy applied it: 1 agent(s) serving pg-test did not confirm (context deadline exceeded): a2 (applied revision ")
		assert.Contains(t, stderr, "; its last record says ready)")
		t.Logf("set --wait with a2 frozen:\n%s%s", out, stderr)
	})

	t.Run("a dead agent is reported gone, not waited for", func(t *testing.T) {
		require.Eventually(t, func() bool { return len(l.fleetStatus(t)) == 4 && len(l.fleetStatus(t)["a2"].Behind) == 0 }, 20*time.Second, 100*time.Millisecond, "a2 caught up")
		d := l.agents["a3"].d
		require.NoError(t, d.cmd.Process.Kill())
		_ = d.cmd.Wait()
		code, out, stderr := l.cli(t, "set", "pg-test-2", "pg_weight=70", "--wait", "--timeout", "20s")
		require.Equal(t, 0, code, "%s%s", out, stderr)
		assert.Contains(t, out, "  a3: gone (its registration expired or it stopped): not waited for")
		assert.Contains(t, out, "all 3 live agents serving pg-test applied revision ")
		_, inFleet := l.fleetStatus(t)["a3"]
		assert.False(t, inFleet, "gone from the fleet view")
	})

	t.Run("the primary is not drained without --force", func(t *testing.T) {
		code, _, stderr := l.cli(t, "drain", "pg-test-1")
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, "pg-test-1 is the primary of pg-test (it holds Patroni's leader key)")
		code, out, _ := l.cli(t, "overrides")
		require.Equal(t, 0, code)
		assert.NotContains(t, out, "pg-test-1:", "nothing written")
	})

	t.Run("drain --wait waits for the last session", func(t *testing.T) {
		// A long session through a1's replica service to pg-test-3 (the
		// replica service balances; dial until one lands there).
		var long net.Conn
		require.Eventually(t, func() bool {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", l.agents["a1"].replica), time.Second)
			if err != nil {
				return false
			}
			if l.members["pg-test-3"].Sessions() > 0 {
				long = c
				return true
			}
			c.Close()
			return false
		}, 10*time.Second, 10*time.Millisecond, "a session on pg-test-3")
		defer long.Close()
		out := &local.LogBuffer{}
		done := make(chan int, 1)
		go func() {
			var errOut local.LogBuffer
			done <- run(context.Background(), []string{"drain", "pg-test-3", "--wait", "--timeout", "30s",
				"--inventory", l.agents["a1"].inv, "--etcd", l.etcd.Endpoint}, out, &errOut)
		}()
		require.Eventually(t, func() bool { return strings.Contains(out.String(), "a1: 1 session(s) left on pg-test-3") }, 20*time.Second, 20*time.Millisecond,
			"drain reports the session:\n%s", out)
		select {
		case <-done:
			t.Fatalf("drain returned with a session left:\n%s", out)
		default:
		}
		assert.Contains(t, l.agents["a2"].hap.Exec("show servers state pg-test-replica"), "pg-test-3 ", "drained on a2 too")
		long.Close()
		select {
		case code := <-done:
			assert.Equal(t, 0, code, out.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("drain did not return after the session ended:\n%s", out)
		}
		assert.Contains(t, out.String(), "pg-test-3 is drained on all 3 live agents: safe to restart")
		t.Logf("drain --wait:\n%s", out)
		assert.Equal(t, 0, l.members["pg-test-3"].Sessions())

		code, out2, stderr := l.cli(t, "undrain", "pg-test-3", "--wait", "--timeout", "20s")
		require.Equal(t, 0, code, "%s%s", out2, stderr)
		assert.Contains(t, out2, "pg-test-3: (no overrides)")
	})
}

// A crash failover with the old primary isolated, not dead: it still
// answers /primary, so HAProxy's checks keep it up. fence (Patroni's
// pre_promote) returns once every HAProxy shows the new leader alone in
// the primary services; an agent that cannot confirm makes it exit 0 by
// default (availability first) and 1 with --strict.
func TestFence(t *testing.T) {
	l := newFleetLab(t, 10*time.Second, "a1", "a2", "a3") // a frozen agent stays registered
	require.Eventually(t, func() bool {
		rows := l.fleetStatus(t)
		return len(rows) == 3 && rows["a1"].Ready && rows["a2"].Ready && rows["a3"].Ready
	}, 30*time.Second, 100*time.Millisecond, "three agents")
	fence := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"fence", "--cluster", "pg-test", "--etcd", l.etcd.Endpoint}, args...)...)
	}
	d := l.agents["a2"].d
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGSTOP)) // registered, applying nothing
	resumed := false
	defer func() {
		if !resumed {
			_ = d.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()

	// pg-test-1 loses etcd: its keys expire; pg-test-2 takes the leader
	// key and calls pre_promote. pg-test-1 still says primary.
	l.members["pg-test-2"].SetPrimary(true)
	l.patroni.ExpireLease("pg-test-1")
	began := time.Now()
	l.patroni.Leader("pg-test-2")

	code, out, stderr := fence("--timeout", "2s")
	assert.Equal(t, 0, code, "availability first: %s%s", out, stderr)
	assert.Contains(t, out, "fencing pg-test for pg-test-2 (leader key created at revision ")
	assert.Contains(t, out, "  a1: fenced")
	assert.Contains(t, out, "  a3: fenced")
	assert.Contains(t, stderr, "pgsvc fence: not confirmed, promoting anyway (availability first; --strict refuses): 1 agent(s) serving pg-test did not confirm (context deadline exceeded): a2 ")
	for _, a := range []string{"a1", "a3"} {
		assert.NotContains(t, l.agents[a].upServers(t, "pg-test-primary"), "pg-test-1", "%s: the old primary is out", a)
	}

	code, _, stderr = fence("--timeout", "1s", "--strict")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "fence not confirmed (--strict: do not promote): 1 agent(s) serving pg-test did not confirm (context deadline exceeded): a2 ")

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGCONT))
	resumed = true
	code, out, stderr = fence("--timeout", "20s", "--strict")
	took := time.Since(began)
	require.Equal(t, 0, code, "%s%s", out, stderr)
	assert.Contains(t, out, "pg-test fenced on all 3 live agents")
	assert.NotContains(t, l.agents["a2"].upServers(t, "pg-test-primary"), "pg-test-1")
	t.Logf("fence, loopback, 3 agents (one frozen for 3 s of it): %s from the leader key to the last confirmation\n%s", took.Round(time.Millisecond), out)

	// A new term is a new fence: the agents' old confirmation does not count.
	l.patroni.DeleteLeader()
	l.patroni.Leader("pg-test-3")
	began = time.Now()
	code, out, stderr = fence("--timeout", "20s", "--strict")
	require.Equal(t, 0, code, "%s%s", out, stderr)
	assert.Contains(t, out, "fencing pg-test for pg-test-3")
	t.Logf("fence, loopback, 3 agents: %s from the leader key to the last confirmation", time.Since(began).Round(time.Millisecond))
}

// upServers lists the servers HAProxy shows up in a backend (show stat).
func (a *fleetAgent) upServers(t *testing.T, backend string) string {
	t.Helper()
	var up []string
	for _, line := range strings.Split(a.hap.Exec("show stat "+backend+" 4 -1"), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && strings.HasPrefix(f[17], "UP") {
			up = append(up, f[1])
		}
	}
	return strings.Join(up, " ")
}

// frontendMaxconn is the maxconn of a frontend as this agent's HAProxy
// shows it.
func (a *fleetAgent) frontendMaxconn(t *testing.T, frontend string) int {
	t.Helper()
	fe, err := dataplaneapi.ParseFrontends(a.hap.Exec(dataplaneapi.FrontendsLine))
	require.NoError(t, err)
	f, ok := fe[frontend]
	require.True(t, ok, "%s: frontend %s", a.name, frontend)
	return f.Maxconn
}

// Patroni's before_stop in a switchover, with hold_from: before_stop: the
// request alone holds nothing (the old primary still takes writes until
// its checkpoint ends); `pgsvc before-stop` tells the agents it is about
// to stop and returns once every HAProxy holds; promotion releases them.
// Outside a switchover, or on another member, it returns at once. On
// HAProxy < 3.0 no agent arms, and it returns once each has seen the
// request.
func TestBeforeStop(t *testing.T) {
	l := newFleetLabWith(t, 10*time.Second, []string{"--hold-connections", "--hold-from", "before_stop"}, "a1", "a2")
	require.Eventually(t, func() bool {
		rows := l.fleetStatus(t)
		return len(rows) == 2 && rows["a1"].Ready && rows["a2"].Ready
	}, 30*time.Second, 100*time.Millisecond, "two agents")
	hook := func(member string) (int, string, string) {
		return runCLI(t, "before-stop", "--cluster", "pg-test", "--member", member, "--etcd", l.etcd.Endpoint, "--timeout", "10s")
	}
	accepting := func(what string) {
		t.Helper()
		for _, a := range []string{"a1", "a2"} {
			assert.Equal(t, 5000, l.agents[a].frontendMaxconn(t, "pg-test-primary"), "%s: %s", a, what)
		}
	}

	code, out, stderr := hook("pg-test-1")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "pg-test: no switchover due")
	accepting("a restart or shutdown without a request holds nothing")

	rev := l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
	holds := local.HAProxyVersion(t).AtLeast(3, 0)
	require.Eventually(t, func() bool {
		rows := l.fleetStatus(t)
		return rows["a1"].Applied["pg-test"] >= rev && rows["a2"].Applied["pg-test"] >= rev
	}, 10*time.Second, 50*time.Millisecond, "both agents saw the request")
	rows := l.fleetStatus(t)
	for _, a := range []string{"a1", "a2"} {
		if holds {
			assert.Equal(t, []string{"pg-test"}, rows[a].Armed, "%s is armed", a)
		} else {
			assert.Empty(t, rows[a].Armed, "%s: HAProxy < 3.0 never arms", a)
		}
	}
	accepting("the request alone holds nothing")

	code, out, stderr = hook("pg-test-3")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "pg-test: pg-test-1 leads, not pg-test-3: nothing to hold")
	accepting("another member's stop holds nothing")

	began := time.Now()
	code, out, stderr = hook("pg-test-1")
	took := time.Since(began)
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr)
	assert.Contains(t, out, "pg-test: all 2 live agents ready for the stop")
	if !holds {
		assert.Contains(t, out, "  a1: not holding")
		accepting("HAProxy < 3.0 never holds")
		t.Logf("before-stop with 2 agents that cannot hold: %s", took.Round(time.Millisecond))
		return
	}
	assert.Contains(t, out, "  a1: holding")
	assert.Contains(t, out, "  a2: holding")
	for _, a := range []string{"a1", "a2"} {
		assert.Equal(t, 0, l.agents[a].frontendMaxconn(t, "pg-test-primary"), "%s holds when the hook returns", a)
	}
	t.Logf("before-stop, loopback, 2 agents: %s from the hook's start to the last agent holding\n%s", took.Round(time.Millisecond), out)

	l.patroni.DeleteLeader()
	l.members["pg-test-2"].SetPrimary(true)
	l.patroni.Leader("pg-test-2")
	l.patroni.ClearFailover()
	l.patroni.Member("pg-test-2", l.patroni.Role, "running")
	for _, a := range []string{"a1", "a2"} {
		require.Eventually(t, func() bool { return l.agents[a].frontendMaxconn(t, "pg-test-primary") == 5000 }, 15*time.Second, 50*time.Millisecond,
			"%s released once promotion ended\n%s", a, l.agents[a].d.logs.String())
	}
	assert.Contains(t, l.agents["a1"].d.logs.String(), "(before_stop)")
}

// before-stop's bad flags are errors (a hook whose flags are wrong is
// found when it is installed); etcd unreachable is not: Patroni stops
// PostgreSQL anyway.
func TestBeforeStopBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no cluster", []string{}, 1, "before-stop: --cluster: want exactly one cluster, got 0"},
		{"two clusters", []string{"--cluster", "a,b"}, 1, "before-stop: --cluster: want exactly one cluster, got 2"},
		{"grace beyond the timeout", []string{"--cluster", "a", "--grace", "3s"}, 1, "before-stop: --grace 3s: want 0 or more and less than --timeout 2s"},
		{"etcd unreachable", []string{"--cluster", "a", "--etcd", "http://127.0.0.1:1", "--timeout", "300ms"}, 0,
			"PostgreSQL stops anyway (an agent that did not confirm holds once the leader key leaves the old primary)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"before-stop"}, tc.args...)...)
			assert.Equal(t, tc.code, code, stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// The fleet table names what an operator acts on: the cluster an agent is
// behind on with both revisions, an agent that is not ready with its
// reason, holds (armed ones marked), sessions left on drained instances.
func TestFleetTable(t *testing.T) {
	agents := map[string]fleet.Agent{
		"a1": {Node: "a1", Version: "v1", HAProxy: "3.0.11", Clusters: []string{"pg-test"}, Applied: map[string]int64{"pg-test": 17}, Ready: true},
		"a2": {Node: "a2", Version: "v1", HAProxy: "3.0.11", Clusters: []string{"pg-other", "pg-test"}, Applied: map[string]int64{"pg-test": 15, "pg-other": 9},
			Reason: "etcd watch not current"},
		"a3": {Node: "a3", Version: "v0", Clusters: []string{"pg-test"}, Applied: map[string]int64{"pg-test": 17},
			Holds: []string{"pg-test"}, Armed: []string{"pg-other"}, Draining: map[string]int{"pg-test-3": 2, "pg-test-2": 0}},
	}
	rows := fleetRows(agents, map[string]int64{"pg-test": 17, "pg-other": 9})
	require.Len(t, rows, 3)
	assert.Equal(t, map[string]int64{"pg-test": 17}, rows[1].Behind, "a2 is behind on pg-test only")

	var out strings.Builder
	require.NoError(t, writeFleet(&out, rows, 42, "text", "/pgsvc/agents/"))
	assert.Equal(t, ""+
		"NODE  VERSION  HAPROXY  CLUSTERS          APPLIED                  READY                       HOLDS                     DRAINING                 \n"+
		"a1    v1       3.0.11   pg-test           current                  yes                         -                         -                        \n"+
		"a2    v1       3.0.11   pg-other,pg-test  behind: pg-test 15 < 17  no: etcd watch not current  -                         -                        \n"+
		"a3    v0       -        pg-test           current                  no                          pg-test,pg-other (armed)  pg-test-2=0,pg-test-3=2  \n"+
		"3 agents, etcd revision 42\n", out.String())

	out.Reset()
	require.NoError(t, writeFleet(&out, nil, 42, "text", "/pgsvc/agents/"))
	assert.Equal(t, "no live pgsvc agents under /pgsvc/agents/\n", out.String())

	out.Reset()
	require.NoError(t, writeFleet(&out, rows[1:2], 42, "json", "/pgsvc/agents/"))
	var st struct {
		Revision int64      `json:"etcd_revision"`
		Agents   []fleetRow `json:"agents"`
	}
	require.NoError(t, json.Unmarshal([]byte(out.String()), &st), out.String())
	assert.Equal(t, int64(42), st.Revision)
	assert.Equal(t, map[string]int64{"pg-test": 17}, st.Agents[0].Behind)
	assert.Equal(t, "etcd watch not current", st.Agents[0].Reason)
	assert.False(t, st.Agents[0].Ready)
}
