package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
)

// The live commands against a real etcd and a real HAProxy 2.6, as an
// operator uses them: render, start HAProxy, set/unset overrides, dry-run,
// apply, status, and the daemon converging.
func TestLiveCommands(t *testing.T) {
	etcd := local.StartEtcd(t)
	cli := etcd.Client()
	defer cli.Close()
	hap := local.NewHAProxy(t)
	dir := t.TempDir()
	var ports []any
	for i := 0; i < 4; i++ {
		ports = append(ports, local.FreePort(t, "127.0.0.1"))
	}
	inv := writeFile(t, dir, "inventory.yml", fmt.Sprintf(`all:
  children:
    pg-test:
      hosts:
        10.10.10.11: { pg_seq: 1, pg_role: primary }
        10.10.10.12: { pg_seq: 2, pg_role: replica }
        10.10.10.13: { pg_seq: 3, pg_role: replica, pg_offline_query: true }
      vars:
        pg_cluster: pg-test
        pg_default_services:
          - { name: primary ,ip: 127.0.0.1 ,port: %d ,dest: default  ,check: /primary   ,selector: "[]" }
          - { name: replica ,ip: 127.0.0.1 ,port: %d ,dest: default  ,check: /read-only ,selector: "[]" , backup: "[? pg_role == `+"`primary`"+` || pg_role == `+"`offline`"+` ]" }
          - { name: default ,ip: 127.0.0.1 ,port: %d ,dest: postgres ,check: /primary   ,selector: "[]" }
          - { name: offline ,ip: 127.0.0.1 ,port: %d ,dest: postgres ,check: /replica   ,selector: "[? pg_role == `+"`offline`"+` || pg_offline_query ]" , backup: "[? pg_role == `+"`replica`"+` && !pg_offline_query]"}
`, ports...))
	patroni := local.NewPatroni(t, cli, "/pg/", "pg-test", map[string]string{"pg-test-1": "10.10.10.11", "pg-test-2": "10.10.10.12", "pg-test-3": "10.10.10.13"})
	patroni.Steady("pg-test-1", "pg-test-1", "pg-test-2", "pg-test-3")

	code, _, stderr := runCLI(t, "render", "--inventory", inv, "--out", hap.ConfDir)
	require.Equal(t, 0, code, stderr)
	hap.Start()

	common := []string{"--inventory", inv, "--etcd", etcd.Endpoint, "--haproxy-socket", hap.StatsSocket,
		"--haproxy-conf-dir", hap.ConfDir, "--haproxy-config", hap.GlobalConfig, "--haproxy-reload", "master:" + hap.MasterSocket}
	cmd := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, common...)...)
	}

	code, out, stderr := cmd("reconcile", "--dry-run")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "nothing to change\n", out)

	code, out, stderr = cmd("set", "pg-test-3", "pg_offline_query=false", "pg_weight=40")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "pg-test-3: pg_offline_query=false pg_weight=40\n", out)
	code, out, _ = cmd("overrides")
	require.Equal(t, 0, code)
	assert.Equal(t, "pg-test-3: pg_offline_query=false pg_weight=40\n", out)

	code, out, stderr = cmd("reconcile", "--dry-run")
	require.Equal(t, 2, code, "changes pending: %s", stderr)
	assert.Contains(t, out, "would run: set server pg-test-offline/pg-test-3 state drain\n")
	assert.Contains(t, out, "would run: set server pg-test-offline/pg-test-3.b weight 40\n")
	assert.Contains(t, out, "would run: write "+filepath.Join(hap.ConfDir, "pg-test-offline.cfg")+"\n"+
		"    -# service instances 10.10.10.13, 10.10.10.12\n")
	assert.Contains(t, out, "    -    server pg-test-3 10.10.10.13:5432 check port 8008 weight 100\n"+
		"    -    server pg-test-3.b 10.10.10.13:5432 check port 8008 weight 100 backup disabled\n"+
		"    +    server pg-test-3 10.10.10.13:5432 check port 8008 weight 40 disabled\n"+
		"    +    server pg-test-3.b 10.10.10.13:5432 check port 8008 weight 40 backup\n", "the file change itself")
	assert.NotContains(t, out, "reload:", "an offline toggle needs no reload")
	assert.Contains(t, hap.Exec("show servers state pg-test-offline"), "pg-test-3 10.10.10.13 ", "dry run changed nothing")
	assert.Contains(t, hap.Exec("show stat pg-test-offline 4 -1"), ",100,", "weights untouched by the dry run")

	code, out, stderr = cmd("reconcile", "-o", "json")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, `"command": "set server pg-test-offline/pg-test-3 state drain"`)

	code, out, stderr = cmd("reconcile", "--dry-run")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "nothing to change\n", out)

	code, out, stderr = cmd("status")
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `pg-test-offline\s+pg-test-3\s+10.10.10.13:5432\s+replica\s+backup w40\s+backup\s+.*w40`, out)
	assert.NotContains(t, out, "differ from the desired state")

	// The daemon (a real process) converges what the one-shot commands left
	// pending, serves metrics, re-reads on SIGHUP and exits 0 on SIGTERM.
	code, _, stderr = cmd("unset", "pg-test-3", "pg_offline_query", "pg_weight")
	require.Equal(t, 0, code, stderr)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", local.FreePort(t, "127.0.0.1"))
	d := startDaemon(t, append([]string{"run", "--resync", "1s", "--metrics-listen", metricsAddr, "--log-format", "json", "--etcd-password", "secret"}, common...))
	require.Eventually(t, func() bool {
		c, _, _ := cmd("reconcile", "--dry-run")
		return c == 0
	}, 20*time.Second, 100*time.Millisecond, "daemon converged")
	code, out, _ = cmd("status")
	require.Equal(t, 0, code)
	assert.Regexp(t, `pg-test-offline\s+pg-test-3\s+10.10.10.13:5432\s+replica\s+active w100\s+active`, out)
	assert.False(t, strings.Contains(out, "*"))

	require.Eventually(t, func() bool { return httpGet(t, metricsAddr, "/readyz") == "ok\n" }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, "ok\n", httpGet(t, metricsAddr, "/healthz"))
	scrape := httpGet(t, metricsAddr, "/metrics")
	for _, want := range []string{
		`pgsvc_reconcile_passes_total{result="ok",scope="full"}`,
		`pgsvc_reconcile_duration_seconds_bucket{scope="full"`,
		`pgsvc_runtime_commands_total{kind="state"}`,
		`pgsvc_errors_total{source="etcd"} 0`,
		`pgsvc_errors_total{source="inventory"} 0`,
		`pgsvc_errors_total{source="haproxy"} 0`,
		`pgsvc_seconds_since_last_sync`,
		`pgsvc_etcd_revision`,
		`pgsvc_drift_servers 0`,
		`pgsvc_service_members{service="pg-test-offline",slot="active"} 1`,
		`pgsvc_service_members{service="pg-test-offline",slot="backup"} 1`,
		`pgsvc_service_members{service="pg-test-replica",slot="active"} 2`,
		`pgsvc_etcd_connected 1`,
		`pgsvc_inventory_valid 1`,
		`pgsvc_applied_revision{cluster="pg-test"}`,
	} {
		assert.Contains(t, scrape, want)
	}
	assert.Contains(t, scrape, "pgsvc_haproxy_reloads_total 0\n", "no reloads happened")
	assert.Contains(t, scrape, `pgsvc_haproxy_reload_reasons_total{reason="service-added"} 0`, "every series is there from the start")
	// The series exists whether or not the first pass forced the new
	// worker's replicas down before their checks did (it races them).
	assert.Contains(t, scrape, `pgsvc_runtime_commands_total{kind="shutdown"} `)

	require.Eventually(t, func() bool {
		return strings.Contains(httpGet(t, metricsAddr, "/metrics"), "pgsvc_agent_registered 1\n")
	}, 10*time.Second, 50*time.Millisecond,
		"the agent's fleet record is in etcd")
	assert.Contains(t, scrape, "pgsvc_agent_registration_errors_total 0\n")

	code, _, stderr = cmd("set", "pg-test-2", "pg_weight=50")
	require.Equal(t, 0, code, stderr)
	require.Eventually(t, func() bool {
		c, _, _ := cmd("reconcile", "--dry-run")
		return c == 0 && strings.Contains(d.logs.String(), `"cause":"override"`)
	}, 20*time.Second, 100*time.Millisecond, "daemon applied the override")
	// pgsvc_applied_revision is the agent's applied revision, the override's
	// or later: the value an alert compares, not only a series.
	resp, err := cli.Get(context.Background(), "/pgsvc/overrides/pg-test-2")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	var agent fleetRow
	require.Eventually(t, func() bool {
		agent = onlyAgent(t, cmd)
		return agent.Applied["pg-test"] >= resp.Kvs[0].ModRevision && len(agent.Behind) == 0
	}, 10*time.Second, 50*time.Millisecond, "the agent's record shows the override applied")
	assert.True(t, agent.Ready, agent.Reason)
	assert.Contains(t, httpGet(t, metricsAddr, "/metrics"), fmt.Sprintf("pgsvc_applied_revision{cluster=%q} %d\n", "pg-test", agent.Applied["pg-test"]))

	// An invalid inventory is rejected and counted; SIGHUP re-reads it.
	good, err := os.ReadFile(inv)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(inv, []byte("all: [broken"), 0o644))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(httpGet(t, metricsAddr, "/metrics"), "pgsvc_inventory_valid 0") }, 10*time.Second, 50*time.Millisecond)
	assert.Contains(t, httpGet(t, metricsAddr, "/readyz"), "inventory invalid")
	// The fleet record says what /readyz says (it used to stay ready).
	require.Eventually(t, func() bool { return !onlyAgent(t, cmd).Ready }, 10*time.Second, 50*time.Millisecond, "the record is not ready")
	assert.Contains(t, onlyAgent(t, cmd).Reason, "inventory invalid (last good one in force): ")
	// Loads a SIGHUP (or the start) forced; polling may load a changed file
	// too, so those are not counted.
	forcedLoads := func() int {
		return len(regexp.MustCompile(`"msg":"inventory loaded".*"forced":true`).FindAllString(d.logs.String(), -1))
	}
	require.NoError(t, os.WriteFile(inv, good, 0o644))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return forcedLoads() == 2 && httpGet(t, metricsAddr, "/readyz") == "ok\n" }, 10*time.Second, 50*time.Millisecond,
		"the start and this SIGHUP loaded it (the SIGHUP before was rejected)")
	require.Eventually(t, func() bool { return onlyAgent(t, cmd).Ready }, 10*time.Second, 50*time.Millisecond, "the record is ready again")

	// SIGHUP re-reads even an unchanged file (polling would not).
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return forcedLoads() == 3 }, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, d.cmd.Wait(), "SIGTERM: finish the pass in flight, exit 0")
	logs := d.logs.String()
	assert.Contains(t, logs, `"msg":"SIGHUP: re-reading the inventory"`)
	assert.Contains(t, logs, `"msg":"inventory rejected, the last good one stays in force"`)
	assert.Contains(t, logs, `"msg":"pgsvc stopped"`)
	assert.Contains(t, logs, `"server":"pg-test-3.b","kind":"state","before":"ready","after":"drain","cause":"start"`, "one event line per change, with before, after and cause")
	assert.Contains(t, logs, `"server":"pg-test-2","kind":"weight","before":"100","after":"50","cause":"override"`)
	assert.NotContains(t, logs, "secret", "no secrets in logs")
}

// onlyAgent is the one agent `status --fleet -o json` lists.
func onlyAgent(t *testing.T, cmd func(args ...string) (int, string, string)) fleetRow {
	t.Helper()
	code, out, stderr := cmd("status", "--fleet", "-o", "json")
	require.Equal(t, 0, code, stderr)
	var st struct {
		Agents []fleetRow `json:"agents"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Len(t, st.Agents, 1, out)
	return st.Agents[0]
}

type daemon struct {
	cmd  *exec.Cmd
	logs *local.LogBuffer
}

// startDaemon builds pgsvc and runs it as a process, as systemd would.
func startDaemon(t *testing.T, args []string) *daemon {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgsvc")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	d := &daemon{cmd: exec.Command(bin, args...), logs: &local.LogBuffer{}}
	d.cmd.Stderr = d.logs
	require.NoError(t, d.cmd.Start())
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("pgsvc log:\n%s", d.logs.String())
		}
	})
	return d
}

func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRefusesWorldWritable(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yml", goodInventory)
	conf := filepath.Join(dir, "conf.d")
	require.NoError(t, os.Mkdir(conf, 0o755))
	require.NoError(t, os.Chmod(conf, 0o777))
	for _, cmd := range []string{"run", "reconcile"} {
		code, _, stderr := runCLI(t, cmd, "--inventory", inv, "--haproxy-conf-dir", conf, "--haproxy-socket", filepath.Join(dir, "none.sock"))
		assert.Equal(t, 1, code, cmd)
		assert.Contains(t, stderr, "refusing to use HAProxy config dir "+conf+": it is world-writable (mode 0777)", cmd)
	}
}

// smallLab is one primary-only cluster on real etcd and HAProxy, its config
// rendered by pgsvc: head is the inventory up to its service list.
type smallLab struct {
	etcd      *local.Etcd
	hap       *local.HAProxy
	dir, inv  string
	head      string
	firstPort int
	patroni   *local.Patroni
}

func newSmallLab(t *testing.T) *smallLab {
	t.Helper()
	l := &smallLab{etcd: local.StartEtcd(t), hap: local.NewHAProxy(t), dir: t.TempDir(), firstPort: local.FreePort(t, "127.0.0.1")}
	cli := l.etcd.Client()
	t.Cleanup(func() { cli.Close() })
	l.head = "all:\n  children:\n    pg-test:\n      hosts:\n        10.10.10.11: { pg_seq: 1, pg_role: primary }\n" +
		"      vars:\n        pg_cluster: pg-test\n        pg_default_services:\n"
	l.inv = writeFile(t, l.dir, "inventory.yml", l.head+l.service("primary", l.firstPort))
	l.patroni = local.NewPatroni(t, cli, "/pg/", "pg-test", map[string]string{"pg-test-1": "10.10.10.11"})
	l.patroni.Steady("pg-test-1", "pg-test-1")
	code, _, stderr := runCLI(t, "render", "--inventory", l.inv, "--out", l.hap.ConfDir)
	require.Equal(t, 0, code, stderr)
	l.hap.Start()
	return l
}

func (l *smallLab) service(name string, port int) string {
	return fmt.Sprintf("          - { name: %s, ip: 127.0.0.1, port: %d, dest: postgres, check: /primary, selector: \"[]\" }\n", name, port)
}

func (l *smallLab) flags(reload string) []string {
	return []string{"--inventory", l.inv, "--etcd", l.etcd.Endpoint, "--haproxy-socket", l.hap.StatsSocket,
		"--haproxy-conf-dir", l.hap.ConfDir, "--haproxy-config", l.hap.GlobalConfig, "--haproxy-reload", reload}
}

func waitLog(t *testing.T, d *daemon, msg string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), msg) }, 20*time.Second, 20*time.Millisecond, "log %s", msg)
}

// TestSIGTERMFinishesThePassInFlight: SIGTERM arriving during a structural
// pass (config written, reload running) lets the pass finish: the reload
// completes, the new worker is verified, nothing is left pending, exit 0.
func TestSIGTERMFinishesThePassInFlight(t *testing.T) {
	l := newSmallLab(t)
	// A slow reload command: the SIGTERM lands while it runs.
	started := filepath.Join(l.dir, "reload-started")
	script := writeFile(t, l.dir, "reload.sh", fmt.Sprintf("#!/bin/sh\ntouch %s\nsleep 2\necho reload | socat - UNIX-CONNECT:%s\n", started, l.hap.MasterSocket))
	require.NoError(t, os.Chmod(script, 0o755))
	common := l.flags("exec:" + script)
	d := startDaemon(t, append([]string{"run", "--log-format", "json", "--metrics-listen", ""}, common...))
	waitLog(t, d, `"msg":"pgsvc running"`)

	require.NoError(t, os.WriteFile(l.inv, []byte(l.head+l.service("primary", l.firstPort)+l.service("standby", local.FreePort(t, "127.0.0.1"))), 0o644))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, 20*time.Second, 20*time.Millisecond, "reload started")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, d.cmd.Wait(), "exit 0")

	logs := d.logs.String()
	assert.NotContains(t, logs, "reconcile failed", "the pass in flight finished")
	assert.Contains(t, logs, `"reload":true`)
	assert.Contains(t, l.hap.Exec("show stat pg-test-standby 4 -1"), "pg-test-standby,pg-test-1,", "the new service is live")
	code, out, stderr := runCLI(t, append([]string{"reconcile", "--dry-run"}, common...)...)
	assert.Equal(t, 0, code, "nothing pending: %s %s", out, stderr)
}

// TestHAProxyRestartIsVerified: HAProxy restarted by someone else, from a
// file edited by hand, is noticed within seconds (not at the next resync,
// an hour away here) and brought back to the desired state.
func TestHAProxyRestartIsVerified(t *testing.T) {
	l := newSmallLab(t)
	common := l.flags("master:" + l.hap.MasterSocket)
	d := startDaemon(t, append([]string{"run", "--log-format", "json", "--metrics-listen", "", "--resync", "1h"}, common...))
	waitLog(t, d, `"msg":"HAProxy in sync"`) // the first pass must not see the hand edit
	file := filepath.Join(l.hap.ConfDir, "pg-test-primary.cfg")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(string(data), "server pg-test-1 10.10.10.11:5432 check port 8008 weight 100", "server pg-test-1 10.10.10.11:5432 check port 8008 weight 3", 1)), 0o644))
	l.hap.Restart()
	// pgsvc may repair it before this test can look, so the proof that
	// HAProxy came up with the hand-edited weight is pgsvc's "before":"3".
	waitLog(t, d, `"msg":"haproxy worker changed, verifying every service"`)
	require.Eventually(t, func() bool {
		return strings.Contains(d.logs.String(), `"server":"pg-test-1","kind":"weight","before":"3","after":"100","cause":"haproxy-restart"`)
	}, 20*time.Second, 20*time.Millisecond)
	code, out, stderr := runCLI(t, append([]string{"reconcile", "--dry-run"}, common...)...)
	assert.Equal(t, 0, code, "runtime and file repaired: %s %s", out, stderr)
}

// A hold left behind (a pgsvc killed mid-switchover): status names the
// held service, reconcile --dry-run shows the release pending (exit 2) on
// HAProxy >= 3.0, and reconcile releases it. Below 3.0 pgsvc never touches
// a frontend's maxconn, so it shows nothing pending.
func TestHeldServiceInStatusAndDryRun(t *testing.T) {
	l := newSmallLab(t)
	flags := l.flags("none")
	require.Equal(t, "", strings.TrimSpace(l.hap.Exec("set maxconn frontend pg-test-primary 0")))
	code, out, stderr := runCLI(t, append([]string{"status"}, flags...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "pg-test-primary: new connections held (frontend maxconn 0, configured 5000)")

	code, out, stderr = runCLI(t, append([]string{"reconcile", "--dry-run"}, flags...)...)
	if !l.hap.Version.AtLeast(3, 0) {
		assert.Equal(t, 0, code, "%s: frontends are never touched below 3.0\n%s%s", l.hap.Version.Line, out, stderr)
		assert.NotContains(t, out, "set maxconn frontend")
		require.Equal(t, "", strings.TrimSpace(l.hap.Exec("set maxconn frontend pg-test-primary 5000")), "no client waits: safe on 2.6 too")
		return
	}
	assert.Equal(t, 2, code, "a pending release is a pending change\n%s%s", out, stderr)
	assert.Contains(t, out, "set maxconn frontend pg-test-primary 5000")

	// While Patroni's switchover is under way the hold is the daemon's: a
	// one-shot reconcile leaves it, and says so.
	l.patroni.RequestSwitchover("pg-test-1", "pg-test-2", "")
	code, out, stderr = runCLI(t, append([]string{"reconcile"}, flags...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "left holding: frontend pg-test-primary")
	code, out, _ = runCLI(t, append([]string{"status"}, flags...)...)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "new connections held", "left holding during the switchover")

	// Outside a switchover a held frontend is a leftover: released.
	l.patroni.ClearFailover()
	code, _, stderr = runCLI(t, append([]string{"reconcile"}, flags...)...)
	require.Equal(t, 0, code, stderr)
	code, out, _ = runCLI(t, append([]string{"status"}, flags...)...)
	require.Equal(t, 0, code)
	assert.NotContains(t, out, "new connections held", "released")
}
