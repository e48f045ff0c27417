package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
)

// TestSecondSIGTERMExitsAtOnce pins the way out of a stuck pass: the first
// SIGTERM lets the pass in flight finish, a second one exits at once,
// non-zero, and says it was forced. Before, the second SIGTERM was
// swallowed and pgsvc sat on the stuck pass until its 30 s timeout, then
// exited 0.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	l := newSmallLab(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", local.FreePort(t, "127.0.0.1"))
	d := startDaemon(t, append([]string{"run", "--log-format", "json", "--metrics-listen", metricsAddr, "--resync", "1h"},
		l.flags("master:"+l.hap.MasterSocket)...))
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = d.cmd.Process.Kill(); <-exited }) // before startDaemon's cleanup, which would Wait again
	waitLog(t, d, `"msg":"HAProxy in sync"`)

	// Freeze HAProxy, master and worker (one process group, led by the
	// master): its stats socket accepts connections and never answers.
	data, err := os.ReadFile(l.hap.PIDFile)
	require.NoError(t, err)
	master, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(-master, syscall.SIGCONT) })
	require.NoError(t, syscall.Kill(-master, syscall.SIGSTOP))

	// A second host: the pass computes its desired state (the member gauge
	// says so), then waits on the frozen socket for up to 30 s.
	const host = "        10.10.10.11: { pg_seq: 1, pg_role: primary }\n"
	require.Contains(t, l.head, host)
	two := strings.Replace(l.head, host, host+"        10.10.10.12: { pg_seq: 2, pg_role: replica }\n", 1)
	require.NoError(t, os.WriteFile(l.inv, []byte(two+l.service("primary", l.firstPort)), 0o644))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(httpGet(t, metricsAddr, "/metrics"), `pgsvc_service_members{service="pg-test-primary",slot="active"} 2`)
	}, 20*time.Second, 20*time.Millisecond, "the pass with the second host started")

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	waitLog(t, d, `"msg":"stopping after the pass in flight`)
	select {
	case <-exited:
		t.Fatalf("exited on the first SIGTERM, with the pass in flight stuck:\n%s", d.logs.String())
	default:
	}

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
	case <-time.After(10 * time.Second): // the stuck pass alone would last 30 s
		t.Fatal("a second SIGTERM did not exit at once")
	}
	assert.Equal(t, 128+int(syscall.SIGTERM), d.cmd.ProcessState.ExitCode(), "forced: non-zero, as a shell reports SIGTERM")
	logs := d.logs.String()
	assert.Contains(t, logs, `"level":"ERROR","msg":"second stop signal: exiting at once, without waiting for the pass in flight;`)
	assert.Contains(t, logs, `"signal":"SIGTERM"`)
	assert.NotContains(t, logs, `"msg":"pgsvc stopped"`, "the pass in flight was not waited for")
}
