package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
	"github.com/pgsvc/pgsvc/selector"
)

// Inventories of one host per cluster, each cluster with Pigsty's four
// default services (5433, 5434, 5436, 5438).
const (
	invHead  = "all:\n  children:\n"
	clusterA = "    pg-a:\n      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-a }\n"
	clusterB = "    pg-b:\n      hosts: { 10.0.0.2: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-b }\n"
	clusterC = "    pg-c:\n      hosts: { 10.0.0.3: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-c }\n"
	// proxy carries the clusters that name it as pg_service_provider.
	proxy = "    proxy: { hosts: { 10.0.0.9: {} } }\n"
)

// onProxy is a cluster whose services Pigsty renders onto group proxy.
func onProxy(name, host string) string {
	return "    " + name + ": { hosts: { " + host + ": { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: " + name + ", pg_service_provider: proxy } }\n"
}

// testSource is an inventory source on a file in a fresh directory, its
// JSON log captured. Pause is a no-op: every read is taken as a settle
// interval later unless a test writes in between.
func testSource(t *testing.T, content string) (*reconcile.InventorySource, *bytes.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	var logs bytes.Buffer
	return &reconcile.InventorySource{Path: path, Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Pause: func(context.Context, time.Duration) error { return nil }}, &logs
}

// replaceFile writes content the way Ansible's copy, sed -i and most
// editors do: a temporary file renamed over the inventory.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, errors.Join(err, f.Close()))
}

// scope names the clusters of the model in force.
func scope(in *reconcile.Inputs) []string {
	_, cs := in.Model()
	names := []string{}
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// logRecords parses the captured JSON log.
func logRecords(t *testing.T, logs *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		out = append(out, r)
	}
	return out
}

func countMsg(t *testing.T, logs *bytes.Buffer, msg string) int {
	t.Helper()
	n := 0
	for _, r := range logRecords(t, logs) {
		if strings.Contains(r["msg"].(string), msg) {
			n++
		}
	}
	return n
}

// Pins: an inventory that every later pass (or the renderer) would fail on
// replaced the model in force — Inputs.SetModel checked only the scope —,
// so every cluster on the node froze while /readyz stayed healthy.
func TestInventoryRejectedAtLoadKeepsLastGood(t *testing.T) {
	failRender := func(d reconcile.Desired) error {
		if _, ok := d.Service("pg-b-primary"); ok {
			return errors.New("render pg-b-primary: refused")
		}
		return nil
	}
	cases := []struct {
		name     string
		node     string
		validate func(reconcile.Desired) error
		good     string
		next     string
		kept     []string // the scope in force after the load
		want     string   // the load's error, {inv} the file's path; "" = accepted
	}{
		{name: "two provider clusters bind one port on the proxy node", node: "10.0.0.9",
			good: invHead + proxy + onProxy("pg-a", "10.0.0.1"), next: invHead + proxy + onProxy("pg-a", "10.0.0.1") + onProxy("pg-b", "10.0.0.2"),
			kept: []string{"pg-a"}, want: "{inv}: services pg-a-default (*:5436) and pg-b-default (*:5436) bind the same port on node 10.0.0.9"},
		{name: "a member of one cluster is the proxy of another", node: "10.0.0.9",
			good: invHead + proxy + "    pg-c: { hosts: { 10.0.0.9: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-c } }\n",
			next: invHead + proxy + "    pg-c: { hosts: { 10.0.0.9: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-c } }\n" + onProxy("pg-a", "10.0.0.1"),
			kept: []string{"pg-c"}, want: "{inv}: services pg-a-default (*:5436) and pg-c-default (*:5436) bind the same port on node 10.0.0.9"},
		{name: "the render check fails", validate: failRender,
			good: invHead + clusterA, next: invHead + clusterA + clusterB,
			kept: []string{"pg-a"}, want: "{inv}: render pg-b-primary: refused"},
		{name: "a selector fails on the static state",
			good: invHead + clusterA, next: invHead + clusterA + "    pg-b:\n      hosts: { 10.0.0.2: { pg_seq: 1, pg_role: primary } }\n" +
				"      vars:\n        pg_cluster: pg-b\n        pg_services: [ { name: bad, port: 5440, selector: \"[].pg_seq\" } ]\n",
			kept: []string{"pg-a"}, want: `{inv}:10: cluster pg-b service bad: selector "[].pg_seq" returned a list holding 1, want a list of hosts`},
		{name: "without a node, clusters on their own nodes share ports",
			good: invHead + clusterA, next: invHead + clusterA + clusterB, kept: []string{"pg-a", "pg-b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, _ := testSource(t, tc.good)
			m := metrics.New()
			src.Result, src.Validate = m.Inventory, tc.validate
			in := reconcile.NewInputs(tc.node, nil)
			require.NoError(t, src.Load(in, true))
			m.EtcdReady(true)
			m.Pass(reconcile.PassInfo{}) // synced once
			ok, why := m.Ready()
			require.True(t, ok, why)

			replaceFile(t, src.Path, tc.next)
			err := src.Load(in, false)
			assert.Equal(t, tc.kept, scope(in))
			if tc.want == "" {
				require.NoError(t, err)
				assert.Equal(t, 1.0, gauge(t, m.Registry, "pgsvc_inventory_valid"))
				return
			}
			want := strings.ReplaceAll(tc.want, "{inv}", src.Path)
			require.EqualError(t, err, want)
			assert.Equal(t, 0.0, gauge(t, m.Registry, "pgsvc_inventory_valid"))
			ok, why = m.Ready()
			assert.False(t, ok)
			assert.Equal(t, "inventory invalid (last good one in force): "+want, why)

			replaceFile(t, src.Path, tc.good)
			require.NoError(t, src.Load(in, false), "fixing the file restores readiness")
			assert.Equal(t, 1.0, gauge(t, m.Registry, "pgsvc_inventory_valid"))
			ok, why = m.Ready()
			assert.True(t, ok, why)
		})
	}
}

// Pins: a file caught half-way through an in-place write (cat >: truncate,
// then several writes) was installed when it parsed — here the first part
// is valid YAML without pg-b —, and the next full pass removed pg-b's
// services and reloaded HAProxy. The writer acts while the source waits
// between its two reads.
func TestInventoryMidWriteNotInstalled(t *testing.T) {
	old := invHead + clusterA + clusterB
	first, rest := invHead+clusterA, clusterB+clusterC // the new file, written in two parts
	partial, err := selector.ParseInventory("partial.yml", []byte(first))
	require.NoError(t, err)
	_, err = selector.NewModel(partial)
	require.NoError(t, err, "the first part alone is a valid inventory without pg-b")
	caughtAfter := func(part string) func(*testing.T, string) {
		return func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, []byte(part), 0o644)) }
	}
	cases := []struct {
		name   string
		start  func(t *testing.T, path string) // the writer's steps before the source reads
		writes []string                        // appended during each pause, in turn
		polls  [][]string                      // the scope after each poll
		forced []string                        // or: the scope after one forced load
	}{
		{name: "cat > caught after its first write", start: caughtAfter(first), writes: []string{rest},
			polls: [][]string{{"pg-a", "pg-b"}, {"pg-a", "pg-b", "pg-c"}}},
		{name: "cat > caught truncated, polled between its writes", start: caughtAfter(""), writes: []string{first, rest},
			polls: [][]string{{"pg-a", "pg-b"}, {"pg-a", "pg-b"}, {"pg-a", "pg-b", "pg-c"}}},
		{name: "SIGHUP during cat >", start: caughtAfter(first), writes: []string{rest},
			forced: []string{"pg-a", "pg-b", "pg-c"}},
		{name: "SIGHUP while cat > has truncated", start: caughtAfter(""), writes: []string{first, rest},
			forced: []string{"pg-a", "pg-b", "pg-c"}},
		{name: "editor moves the old file away, then writes the new one",
			start: func(t *testing.T, path string) { require.NoError(t, os.Rename(path, path+"~")) }, writes: []string{first + rest},
			polls: [][]string{{"pg-a", "pg-b"}, {"pg-a", "pg-b", "pg-c"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, logs := testSource(t, old)
			var results []error
			src.Result = func(err error) { results = append(results, err) }
			in := reconcile.NewInputs("", nil)
			require.NoError(t, src.Load(in, true))
			writes := tc.writes
			src.Pause = func(context.Context, time.Duration) error {
				assert.Equal(t, []string{"pg-a", "pg-b"}, scope(in), "nothing is installed before the write is complete")
				if len(writes) > 0 {
					appendOrCreate(t, src.Path, writes[0])
					writes = writes[1:]
				}
				return nil
			}
			tc.start(t, src.Path)
			if tc.forced != nil {
				require.NoError(t, src.Load(in, true))
				assert.Equal(t, tc.forced, scope(in))
			}
			for i, want := range tc.polls {
				require.NoError(t, src.Load(in, false), "poll %d", i+1)
				assert.Equal(t, want, scope(in), "after poll %d", i+1)
			}
			assert.Empty(t, writes, "the writer finished")
			assert.Equal(t, []error{nil, nil}, results, "the start and the complete file; nothing reported in between")
			assert.Zero(t, countMsg(t, logs, "removes whole clusters"))
		})
	}
}

func appendOrCreate(t *testing.T, path, content string) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		return
	}
	appendFile(t, path, content)
}

// A forced load (SIGHUP) waits for a changing file only so long: then it
// is an error, the model in force stays, and the next poll tries again.
func TestInventoryForcedLoadGivesUpOnChangingFile(t *testing.T) {
	src, _ := testSource(t, invHead+clusterA)
	var results []error
	src.Result = func(err error) { results = append(results, err) }
	in := reconcile.NewInputs("", nil)
	require.NoError(t, src.Load(in, true))
	pauses := 0
	src.Pause = func(context.Context, time.Duration) error {
		pauses++
		appendFile(t, src.Path, "# still writing\n")
		return nil
	}
	replaceFile(t, src.Path, invHead+clusterA+clusterB)
	err := src.Load(in, true)
	require.ErrorContains(t, err, src.Path+" still changing after 5s: not loaded")
	assert.Equal(t, 10, pauses, "bounded")
	assert.Equal(t, []string{"pg-a"}, scope(in))
	require.Len(t, results, 2)
	assert.Equal(t, err, results[1])

	src.Pause = func(context.Context, time.Duration) error { return nil }
	require.NoError(t, src.Load(in, false), "the writer is done: the next poll loads it")
	assert.Equal(t, []string{"pg-a", "pg-b"}, scope(in))
	assert.Equal(t, []error{nil, err, nil}, results)
}

// A file that never settles is never loaded; polls say so once, loudly.
func TestInventoryPollsWarnOnceWhenFileKeepsChanging(t *testing.T) {
	src, logs := testSource(t, invHead+clusterA)
	in := reconcile.NewInputs("", nil)
	require.NoError(t, src.Load(in, true))
	src.Pause = func(context.Context, time.Duration) error {
		appendFile(t, src.Path, "# still writing\n")
		return nil
	}
	replaceFile(t, src.Path, invHead+clusterA+clusterB)
	for i := 0; i < 25; i++ {
		require.NoError(t, src.Load(in, false))
	}
	assert.Equal(t, []string{"pg-a"}, scope(in))
	assert.Equal(t, 1, countMsg(t, logs, "inventory keeps changing"))
}

// Pins: content was used on its first read, with no settle interval; a
// rename-style write is whole when seen, and loads one settle interval
// after the poll that sees it. An unchanged file costs no wait.
func TestInventoryRenameLoadsAfterSettle(t *testing.T) {
	src, _ := testSource(t, invHead+clusterA)
	src.Pause, src.Settle = nil, 30*time.Millisecond
	in := reconcile.NewInputs("", nil)
	require.NoError(t, src.Load(in, true))

	start := time.Now()
	require.NoError(t, src.Load(in, false))
	assert.Less(t, time.Since(start), src.Settle, "an unchanged file is not read twice")

	replaceFile(t, src.Path, invHead+clusterA+clusterB)
	start = time.Now()
	require.NoError(t, src.Load(in, false))
	assert.GreaterOrEqual(t, time.Since(start), src.Settle, "read twice, a settle interval apart")
	assert.Equal(t, []string{"pg-a", "pg-b"}, scope(in))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	replaceFile(t, src.Path, invHead+clusterA)
	require.ErrorIs(t, src.LoadContext(ctx, in, false), context.Canceled)
	assert.Equal(t, []string{"pg-a", "pg-b"}, scope(in), "a cancelled wait installs nothing")
}

// Pins: a load that removed whole clusters (their services, files and a
// reload follow) was logged like any other load.
func TestInventoryWarnsWhenClustersGo(t *testing.T) {
	cases := []struct {
		name       string
		node       string
		good, next string
		gone       []any // the Warn's clusters; nil: no Warn
	}{
		{name: "a cluster deleted", good: invHead + clusterA + clusterB + clusterC, next: invHead + clusterB,
			gone: []any{"pg-a", "pg-c"}},
		{name: "a cluster moved off this node's proxy group", node: "10.0.0.9",
			good: invHead + proxy + onProxy("pg-a", "10.0.0.1") + onProxyAt("pg-b", "10.0.0.2", "6433"),
			next: invHead + proxy + clusterA + onProxyAt("pg-b", "10.0.0.2", "6433"),
			gone: []any{"pg-a"}},
		{name: "a cluster added", good: invHead + clusterA, next: invHead + clusterA + clusterB},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, logs := testSource(t, tc.good)
			in := reconcile.NewInputs(tc.node, nil)
			require.NoError(t, src.Load(in, true))
			replaceFile(t, src.Path, tc.next)
			require.NoError(t, src.Load(in, false))
			var warned []map[string]any
			for _, r := range logRecords(t, logs) {
				if r["level"] == "WARN" {
					warned = append(warned, r)
				}
			}
			if tc.gone == nil {
				assert.Empty(t, warned)
				return
			}
			require.Len(t, warned, 1)
			assert.Contains(t, warned[0]["msg"], "removes whole clusters")
			assert.Equal(t, tc.gone, warned[0]["clusters"])
			assert.Equal(t, src.Path, warned[0]["path"])
		})
	}
}

// onProxyAt is a cluster on group proxy with one service on port.
func onProxyAt(name, host, port string) string {
	return "    " + name + ": { hosts: { " + host + ": { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: " + name +
		", pg_service_provider: proxy, pg_default_services: [ { name: primary, port: " + port + ", selector: \"[]\" } ] } }\n"
}

// Pins: a load that left this HAProxy no cluster at all (a truncated
// file, the proxy group's clusters moved away, the node's host taken out
// of its cluster) was installed with only a warning, and the next pass
// removed every service and file. It is refused; a first load with no
// cluster stays allowed (nothing to remove).
func TestInventoryNeverRemovesEveryCluster(t *testing.T) {
	twoOnProxy := invHead + proxy + onProxyAt("pg-a", "10.0.0.1", "5433") + onProxyAt("pg-b", "10.0.0.2", "6433")
	cases := []struct {
		name       string
		node       string
		good, next string
		kept       []string // the scope after the load
		want       string   // the load's error, {inv} the file's path; "" = accepted
	}{
		{name: "the proxy group's clusters moved away", node: "10.0.0.9", good: twoOnProxy, next: invHead + proxy + clusterA + clusterB,
			kept: []string{"pg-a", "pg-b"},
			want: "{inv}: no PostgreSQL cluster for this HAProxy (node 10.0.0.9), the last good inventory had 2 (pg-a, pg-b): " +
				"refusing to remove every service; to decommission this HAProxy, stop pgsvc and remove its files"},
		{name: "the node's host left its cluster", node: "10.0.0.1", good: invHead + clusterA + clusterB,
			next: invHead + "    spare: { hosts: { 10.0.0.1: {} } }\n" + clusterB, kept: []string{"pg-a"},
			want: "{inv}: no PostgreSQL cluster for this HAProxy (node 10.0.0.1), the last good inventory had 1 (pg-a): " +
				"refusing to remove every service; to decommission this HAProxy, stop pgsvc and remove its files"},
		{name: "the node's cluster moved to a provider group", node: "10.0.0.1", good: invHead + clusterA,
			next: invHead + proxy + onProxyAt("pg-a", "10.0.0.1", "5433"), kept: []string{"pg-a"},
			want: "{inv}: no PostgreSQL cluster for this HAProxy (node 10.0.0.1), the last good inventory had 1 (pg-a) " +
				"(pg_service_provider moved pg-a to group proxy): " +
				"refusing to remove every service; to decommission this HAProxy, stop pgsvc and remove its files"},
		{name: "truncated to its first line", good: invHead + clusterA, next: "all:\n", kept: []string{"pg-a"},
			want: "{inv}: no host sets pg_cluster, so there is no PostgreSQL cluster to serve"},
		{name: "one of two clusters goes", node: "10.0.0.9", good: twoOnProxy, next: invHead + proxy + onProxyAt("pg-b", "10.0.0.2", "6433") + clusterA,
			kept: []string{"pg-b"}},
		{name: "nothing in force: a node without clusters stays without", node: "10.0.0.9", good: invHead + proxy + clusterA,
			next: invHead + proxy + clusterA + clusterB, kept: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, _ := testSource(t, tc.good)
			in := reconcile.NewInputs(tc.node, nil)
			require.NoError(t, src.Load(in, true), "a first load is allowed, with or without a cluster")
			before := scope(in)

			replaceFile(t, src.Path, tc.next)
			err := src.Load(in, false)
			assert.Equal(t, tc.kept, scope(in))
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.EqualError(t, err, strings.ReplaceAll(tc.want, "{inv}", src.Path))
			assert.True(t, selector.IsInputError(err), "bad input: terminal, not retried")
			assert.Equal(t, before, scope(in), "the last good one stays")

			require.Error(t, src.Load(in, true), "a SIGHUP does not force it either")
			assert.Equal(t, before, scope(in))
		})
	}
}
