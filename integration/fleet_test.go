//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// agentNames are the lab's pgsvc agents: the proxy container's (its host
// name) and each DB node's own (its member name).
var agentNames = []string{"haproxy", "pg-test-1", "pg-test-2", "pg-test-3"}

// fleetAgents is `pgsvc status --fleet -o json`, by agent.
func fleetAgents(t testing.TB) map[string]struct {
	Ready  bool             `json:"ready"`
	Behind map[string]int64 `json:"behind"`
} {
	t.Helper()
	out, code := pgsvc(t, "status", "--fleet", "-o", "json")
	require.Equal(t, 0, code, out)
	var st struct {
		Agents []struct {
			Node   string           `json:"node"`
			Ready  bool             `json:"ready"`
			Behind map[string]int64 `json:"behind"`
		} `json:"agents"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	rows := map[string]struct {
		Ready  bool             `json:"ready"`
		Behind map[string]int64 `json:"behind"`
	}{}
	for _, a := range st.Agents {
		rows[a.Node] = struct {
			Ready  bool             `json:"ready"`
			Behind map[string]int64 `json:"behind"`
		}{a.Ready, a.Behind}
	}
	return rows
}

// fleetSettled waits until every running agent is registered, ready and
// current.
func fleetSettled(t testing.TB, want int) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d pgsvc agents registered, ready and current", want), func() bool {
		rows := fleetAgents(t)
		if len(rows) != want {
			return false
		}
		for _, r := range rows {
			if !r.Ready || len(r.Behind) > 0 {
				return false
			}
		}
		return true
	})
}

// testFleet: the four HAProxies (the proxy and one on each node) are
// accounted for in etcd: set --wait returns once all four show the change;
// a stopped node's agent is reported gone after its TTL while the others
// confirm; drain --wait waits for a long query through :5434 on the drained
// replica, then returns.
func testFleet(t *testing.T) {
	primary := healthy(t)
	converged(t)
	fleetSettled(t, 4)
	out := mustPgsvc(t, "status", "--fleet")
	t.Logf("pgsvc status --fleet:\n%s", out)

	began := time.Now()
	out = mustPgsvc(t, "set", "pg-test-2", "pg_weight=60", "--wait", "--timeout", "30s")
	took := time.Since(began)
	for _, a := range agentNames {
		assert.Regexp(t, `(?m)^  `+regexp.QuoteMeta(a)+`: applied \(revision \d+\)$`, out)
	}
	assert.Contains(t, out, "all 4 live agents serving pg-test applied revision ")
	for _, c := range haproxies(t) {
		assert.Equal(t, 60, backendOn(t, c, "replica").Slots["pg-test-2"].UWeight, "%s shows the weight once set --wait returned", c)
	}
	fleetTimes = append(fleetTimes, fmt.Sprintf("%-52s %6d ms  (docker exec included)", "set --wait, 4 agents, to the last confirmation", took.Milliseconds()))
	t.Logf("set --wait with four agents: %s\n%s", took, out)
	mustPgsvc(t, "unset", "pg-test-2", "pg_weight", "--wait", "--timeout", "30s")

	t.Run("drain --wait waits for a long query through 5434", func(t *testing.T) {
		replica := other(primary, "")
		conn, pid := connectTo(t, 5434, replica)
		defer conn.Close(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(context.Background(), "SELECT pg_sleep(6)")
			conn.Close(context.Background())
			done <- err
		}()
		began := time.Now()
		out, code := pgsvc(t, "drain", replica, "--wait", "--timeout", "60s")
		took := time.Since(began)
		require.Equal(t, 0, code, out)
		select {
		case err := <-done:
			require.NoError(t, err, "the long query on the drained replica completed (drain never kills)")
		default:
			t.Fatalf("drain --wait returned while the long query (backend %d) still ran:\n%s", pid, out)
		}
		assert.Contains(t, out, "haproxy: 1 session(s) left on "+replica)
		assert.Contains(t, out, replica+" is drained on all 4 live agents: safe to restart")
		for _, c := range haproxies(t) {
			for _, svc := range []string{"replica", "offline"} {
				assert.NotContains(t, " "+enabledOn(t, c, svc)+" ", " "+replica+" ", "%s: %s out of %s", c, replica, svc)
			}
		}
		fleetTimes = append(fleetTimes, fmt.Sprintf("%-52s %6d ms  (the query had ~6 s to run)", "drain --wait with a long query through :5434", took.Milliseconds()))
		t.Logf("drain --wait: %s\n%s", took, out)
		out = mustPgsvc(t, "undrain", replica, "--wait", "--timeout", "30s")
		assert.Contains(t, out, "all 4 live agents serving pg-test applied revision ")
		converged(t)
		expectLive(t, primary, "")
	})

	t.Run("the primary is refused", func(t *testing.T) {
		out, code := pgsvc(t, "drain", primary)
		assert.Equal(t, 1, code)
		assert.Contains(t, out, primary+" is the primary of pg-test (it holds Patroni's leader key)")
	})

	t.Run("a stopped node's agent is reported gone", func(t *testing.T) {
		stopped := other(primary, "pg-test-1") // a replica
		mustRun(t, "docker", "stop", stopped)  // HAProxy and pgsvc are killed with it: the agent's lease runs out
		defer func() {
			mustRun(t, "docker", "start", stopped)
			healthy(t)
			converged(t)
			fleetSettled(t, 4)
		}()
		out, code := pgsvc(t, "set", "pg-test-2", "pg_weight=70", "--wait", "--timeout", "40s")
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "  "+stopped+": gone (its registration expired or it stopped): not waited for")
		assert.Contains(t, out, "all 3 live agents serving pg-test applied revision ")
		mustPgsvc(t, "unset", "pg-test-2", "pg_weight", "--wait", "--timeout", "30s")
	})
}

// connectTo opens a session through a service port that lands on node.
func connectTo(t *testing.T, port int, node string) (*pgx.Conn, int32) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/postgres?%s", port, dsnOptions))
		cancel()
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var got string
		var pid int32
		if err := conn.QueryRow(context.Background(), "SELECT trim(pg_read_file('/etc/hostname'), E'\\n '), pg_backend_pid()").Scan(&got, &pid); err == nil && got == node {
			return conn, pid
		}
		conn.Close(context.Background())
	}
	t.Fatalf("no session through :%d landed on %s within 20s", port, node)
	return nil, 0
}

// fleetTimes collects the fleet's measured times for the summary.
var fleetTimes []string

// fenceTime reads the last pre_promote run on node from /pg/fence.log
// ("start end rc", or "off"): how long fencing held the promotion.
func fenceTime(t testing.TB, node string) string { return hookTime(t, node, "/pg/fence.log") }

// hookTime reads the last run of a Patroni hook on node from its log.
func hookTime(t testing.TB, node, log string) string {
	t.Helper()
	out, _ := run(t, "docker", "exec", node, "tail", "-1", log)
	f := strings.Fields(out)
	if len(f) == 2 && f[1] == "off" {
		return "off"
	}
	if len(f) != 3 {
		return fmt.Sprintf("unknown (%q)", strings.TrimSpace(out))
	}
	start, err1 := strconv.ParseFloat(f[0], 64)
	end, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("unknown (%q)", strings.TrimSpace(out))
	}
	return fmt.Sprintf("%d ms, exit %s", int((end-start)*1000), f[2])
}
