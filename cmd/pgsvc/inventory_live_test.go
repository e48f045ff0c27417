package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/integration/local"
)

// proxyCluster is a one-member cluster with one primary service on port,
// rendered onto group provider ("": on its own member).
type proxyCluster struct {
	name, host, provider string
	port                 int
}

// proxyInventory is a proxy node (10.10.10.9, group proxy) and clusters.
func proxyInventory(clusters ...proxyCluster) string {
	var b strings.Builder
	b.WriteString("all:\n  children:\n    proxy: { hosts: { 10.10.10.9: {} } }\n")
	for _, c := range clusters {
		fmt.Fprintf(&b, "    %s:\n      hosts:\n        %s: { pg_seq: 1, pg_role: primary }\n      vars:\n        pg_cluster: %s\n", c.name, c.host, c.name)
		if c.provider != "" {
			fmt.Fprintf(&b, "        pg_service_provider: %s\n", c.provider)
		}
		fmt.Fprintf(&b, "        pg_default_services:\n          - { name: primary, ip: 127.0.0.1, port: %d, dest: postgres, check: /primary, selector: \"[]\" }\n", c.port)
	}
	return b.String()
}

// confFiles reads every file of HAProxy's config dir.
func confFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(b)
	}
	return out
}

// Pins, against real etcd and HAProxy: an inventory a render would fail on
// this node (two services binding one IP:port) replaced the model in
// force, and every cluster on the node froze while /readyz stayed healthy;
// one that left this HAProxy no cluster at all was installed with a
// warning, and no cluster followed Patroni any more. Both are refused now:
// HAProxy's files stay, nothing is reloaded, /readyz names the error, and
// the last good model keeps applying etcd events.
func TestBadInventoryLeavesHAProxyAsItIs(t *testing.T) {
	etcd := local.StartEtcd(t)
	cli := etcd.Client()
	t.Cleanup(func() { cli.Close() })
	hap := local.NewHAProxy(t)
	dir := t.TempDir()
	port := local.FreePort(t, "127.0.0.1")
	pgTest := proxyCluster{"pg-test", "10.10.10.11", "proxy", port}
	good := proxyInventory(pgTest)
	inv := writeFile(t, dir, "inventory.yml", good)
	local.NewPatroni(t, cli, "/pg/", "pg-test", map[string]string{"pg-test-1": "10.10.10.11"}).Steady("pg-test-1", "pg-test-1")
	code, _, stderr := runCLI(t, "render", "--inventory", inv, "--node", "10.10.10.9", "--out", hap.ConfDir)
	require.Equal(t, 0, code, stderr)
	hap.Start()
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", local.FreePort(t, "127.0.0.1"))
	d := startDaemon(t, []string{"run", "--node", "10.10.10.9", "--log-format", "json", "--metrics-listen", metricsAddr, "--resync", "1h",
		"--inventory", inv, "--etcd", etcd.Endpoint, "--haproxy-socket", hap.StatsSocket, "--haproxy-conf-dir", hap.ConfDir,
		"--haproxy-config", hap.GlobalConfig, "--haproxy-reload", "master:" + hap.MasterSocket})
	waitReadyz := func(want string) {
		t.Helper()
		if !assert.Eventually(t, func() bool { return httpGet(t, metricsAddr, "/readyz") == want }, 20*time.Second, 50*time.Millisecond) {
			require.Equal(t, want, httpGet(t, metricsAddr, "/readyz"), "/readyz")
		}
	}
	waitReadyz("ok\n")
	reloads := func() int {
		t.Helper()
		st, err := dataplaneapi.ReadMaster(context.Background(), hap.MasterSocket)
		require.NoError(t, err)
		return st.Reloads
	}
	before := reloads()
	rt, err := dataplaneapi.NewRuntime(context.Background(), hap.StatsSocket)
	require.NoError(t, err)
	uweight := func() int {
		t.Helper()
		b, err := rt.Backend(context.Background(), "pg-test-primary")
		require.NoError(t, err)
		return b.Slots["pg-test-1"].UWeight
	}
	// replace writes the way Ansible's copy does: a whole new file.
	replace := func(content string) {
		t.Helper()
		tmp := inv + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, inv))
	}
	// refused waits for /readyz to give the load's error, then checks
	// that HAProxy is as it was and that the last good model still
	// applies an etcd event (an override's weight, file and runtime).
	refused := func(content, want string, from, weight int) {
		t.Helper()
		files := confFiles(t, hap.ConfDir)
		replace(content)
		ready := "inventory invalid (last good one in force): " + inv + ": " + want + "\n"
		waitReadyz(ready)
		assert.Contains(t, httpGet(t, metricsAddr, "/metrics"), "pgsvc_inventory_valid 0")
		assert.Equal(t, files, confFiles(t, hap.ConfDir), "HAProxy's files unchanged")
		assert.Equal(t, before, reloads(), "no reload")

		_, perr := cli.Put(context.Background(), "/pgsvc/overrides/pg-test-1", fmt.Sprintf(`{"pg_weight":%d}`, weight))
		require.NoError(t, perr)
		waitLog(t, d, fmt.Sprintf(`"server":"pg-test-1","kind":"weight","before":"%d","after":"%d","cause":"override"`, from, weight))
		assert.Equal(t, weight, uweight(), "runtime")
		assert.Contains(t, confFiles(t, hap.ConfDir)["pg-test-primary.cfg"], fmt.Sprintf("weight %d", weight), "the last good model's file follows")
		assert.Equal(t, before, reloads(), "no reload")
		assert.Equal(t, ready, httpGet(t, metricsAddr, "/readyz"), "still not ready: the file in place is not the model in force")
	}

	pgB := proxyCluster{"pg-b", "10.10.10.21", "proxy", port}
	refused(proxyInventory(pgTest, pgB), fmt.Sprintf("services pg-b-primary (127.0.0.1:%d) and pg-test-primary (127.0.0.1:%d) bind the same port on node 10.10.10.9", port, port), 100, 40)
	assert.NotContains(t, confFiles(t, hap.ConfDir), "pg-b-primary.cfg")

	offNode := proxyCluster{"pg-test", "10.10.10.11", "", port}
	refused(proxyInventory(offNode), "no PostgreSQL cluster for this HAProxy (node 10.10.10.9), the last good inventory had 1 (pg-test): "+
		"refusing to remove every service; to decommission this HAProxy, stop pgsvc and remove its files", 40, 60)

	replace(good)
	waitReadyz("ok\n")
	assert.Contains(t, httpGet(t, metricsAddr, "/metrics"), "pgsvc_inventory_valid 1")
	assert.Equal(t, before, reloads(), "no reload in the whole test")
}
