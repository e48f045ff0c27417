package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
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
	assert.Contains(t, out, "would run: write "+filepath.Join(hap.ConfDir, "pg-test-offline.cfg")+"\n")
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

	// The daemon converges what the one-shot commands leave pending.
	code, _, stderr = cmd("unset", "pg-test-3", "pg_offline_query", "pg_weight")
	require.Equal(t, 0, code, stderr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		var out, errOut strings.Builder
		done <- run(ctx, append([]string{"run", "--resync", "1s"}, common...), &out, &errOut)
	}()
	require.Eventually(t, func() bool {
		c, _, _ := cmd("reconcile", "--dry-run")
		return c == 0
	}, 20*time.Second, 100*time.Millisecond, "daemon converged")
	code, out, _ = cmd("status")
	require.Equal(t, 0, code)
	assert.Regexp(t, `pg-test-offline\s+pg-test-3\s+10.10.10.13:5432\s+replica\s+active w100\s+active`, out)
	assert.False(t, strings.Contains(out, "*"))
	cancel() // SIGTERM/SIGINT: finish the pass in flight, exit 0
	select {
	case c := <-done:
		assert.Equal(t, 0, c)
	case <-time.After(10 * time.Second):
		t.Fatal("pgsvc run did not stop")
	}
}
