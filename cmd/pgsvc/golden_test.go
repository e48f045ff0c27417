package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/fixtures/gen"
)

var update = flag.Bool("update", false, "rewrite golden files in fixtures/golden")

const (
	fixtures = "../../fixtures/"
	sandbox  = fixtures + "inventory/sandbox.yml"
)

// Golden renders: each case's full stdout is compared with a reviewed file.
// Semantics (which servers, backup flags, ports) are asserted independently
// in reconcile's tests; these pin the exact HAProxy text.
func TestRenderGolden(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"sandbox.cfg", []string{"render", "--inventory", sandbox}},
		{"sandbox-node-pg-meta.cfg", []string{"render", "--inventory", sandbox, "--node", "10.10.10.10"}},
		{"v1.cfg", []string{"render", "--inventory", fixtures + "inventory/v1.yml"}},
		{"standby.cfg", []string{"render", "--inventory", fixtures + "inventory/standby.yml"}},
		{"dest.cfg", []string{"render", "--inventory", fixtures + "inventory/dest.yml"}},
		{"proxy-node.cfg", []string{"render", "--inventory", fixtures + "inventory/proxy.yml", "--node", "10.10.10.30"}},
	}
	// Live snapshots recorded from real Patroni 3.0.2 (bookworm) and 4.0.7
	// (trixie) clusters: fixtures/patroni/README.md.
	for _, patroni := range []string{"p3", "p4"} {
		for _, scenario := range []string{"switchover", "stopped-member", "crash-failover"} {
			tests = append(tests, struct {
				golden string
				args   []string
			}{"live-" + patroni + "-" + scenario + ".cfg", []string{"render", "--inventory", sandbox, "--cluster", "pg-test",
				"--state", fixtures + "patroni/" + patroni + "-" + scenario + ".json"}})
		}
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, stderr := runCLI(t, tc.args...)
			require.Equal(t, 0, code, stderr)
			checkGolden(t, tc.golden, out)
		})
	}
}

func TestReconcileDryRunOffline(t *testing.T) {
	tests := []struct {
		golden string
		state  string
		format string
		code   int
	}{
		{"plan-p3-switchover.json", "p3-switchover.json", "json", 2},
		// After p4's crash failover pg-test-1, the inventory's primary, leads
		// again (pg-test-2 crashed and stays away: its absent member key is
		// no evidence), so there is nothing to change.
		{"plan-p4-failsafe.txt", "p4-failsafe.json", "text", 0},
	}
	// Every recorded scenario on both Patroni versions; the exit code is 2
	// where the live state differs from the inventory's.
	for _, patroni := range []string{"p3", "p4"} {
		for _, sc := range []struct {
			name string
			code map[string]int
		}{
			{"steady", map[string]int{"p3": 0, "p4": 0}},
			{"switchover", map[string]int{"p3": 2, "p4": 2}},
			// p3's crash elected pg-test-3, p4's pg-test-1 (the inventory's primary)
			{"crash-failover", map[string]int{"p3": 2, "p4": 0}},
			{"no-leader", map[string]int{"p3": 2, "p4": 2}}, // the history names the last primary
		} {
			tests = append(tests, struct {
				golden string
				state  string
				format string
				code   int
			}{"plan-" + patroni + "-" + sc.name + ".txt", patroni + "-" + sc.name + ".json", "text", sc.code[patroni]})
		}
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, stderr := runCLI(t, "reconcile", "--dry-run", "--inventory", sandbox, "--cluster", "pg-test",
				"--state", fixtures+"patroni/"+tc.state, "-o", tc.format)
			require.Equal(t, tc.code, code, stderr)
			checkGolden(t, tc.golden, out)
		})
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(fixtures, "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/pgsvc -run Golden -update to create it")
	assert.Equal(t, string(want), got)
}

func TestRenderOutDirMatchesStdout(t *testing.T) {
	dir := t.TempDir()
	inv := fixtures + "inventory/sandbox.yml"
	code, _, stderr := runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test", "--out", dir)
	require.Equal(t, 0, code, stderr)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	var all strings.Builder
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), "pgsvc-fingerprint-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		all.Write(b)
	}
	require.Len(t, names, 5)
	assert.Equal(t, []string{"pg-test-default.cfg", "pg-test-offline.cfg", "pg-test-primary.cfg", "pg-test-replica.cfg"}, names[:4], "one file per service, no temporaries left")
	assert.Regexp(t, `^pgsvc-fingerprint-[0-9a-f]{8}\.cfg$`, names[4], "and the fingerprint of --cluster pg-test's files")
	_, stdout, _ := runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test")
	assert.Equal(t, stdout, all.String())
}

// With one file per cluster, the cluster's file holds what stdout shows.
func TestRenderOutClusterLayout(t *testing.T) {
	dir := t.TempDir()
	inv := fixtures + "inventory/sandbox.yml"
	code, _, stderr := runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test", "--out", dir, "--haproxy-file-layout", "cluster")
	require.Equal(t, 0, code, stderr)
	names, err := filepath.Glob(filepath.Join(dir, "*.cfg"))
	require.NoError(t, err)
	require.Len(t, names, 2, "pg-test.cfg and the fingerprint file")
	got, err := os.ReadFile(filepath.Join(dir, "pg-test.cfg"))
	require.NoError(t, err)
	_, stdout, _ := runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test")
	assert.Equal(t, stdout, string(got))
	assert.Contains(t, stderr, "1 service files in")
}

// Pins: rendering the cluster layout over Pigsty's own per-service files
// left both, each service declared twice; a <cluster>.cfg pgsvc wrote for
// another cluster is refused.
func TestRenderOutSwitchesLayout(t *testing.T) {
	dir := t.TempDir()
	inv := fixtures + "inventory/sandbox.yml"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg-test-primary.cfg"), []byte("listen pg-test-primary\n"), 0o644)) // Pigsty's
	code, _, stderr := runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test", "--out", dir, "--haproxy-file-layout", "cluster")
	require.Equal(t, 0, code, stderr)
	names, err := filepath.Glob(filepath.Join(dir, "pg-test*.cfg"))
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "pg-test.cfg")}, names)

	code, _, stderr = runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test", "--out", dir)
	require.Equal(t, 0, code, stderr)
	names, err = filepath.Glob(filepath.Join(dir, "pg-test*.cfg"))
	require.NoError(t, err)
	assert.Len(t, names, 4, "back to one file per service, pg-test.cfg gone")

	other := "# service: pg-test-x @ 127.0.0.1:1 (managed by pgsvc: edits are overwritten)\n# cluster pg\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg-test.cfg"), []byte(other), 0o644))
	code, _, stderr = runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test", "--out", dir, "--haproxy-file-layout", "cluster")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "pg-test.cfg holds cluster pg's services, not cluster pg-test's: not overwritten")
}

// dataplaneapiFingerprintFile is the one --cluster fingerprint file in dir.
func dataplaneapiFingerprintFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "pgsvc-fingerprint-*.cfg"))
	require.NoError(t, err)
	require.Len(t, m, 1)
	return filepath.Base(m[0])
}

// TestRenderOutRemovesStale: like Pigsty, which wipes <cluster>-*.cfg before
// rendering, `render --out` removes the files pgsvc wrote for the rendered
// clusters whose service is gone; they used to stay and be loaded by HAProxy.
// Unmanaged files and other clusters' files are never touched (Pigsty's
// glob would also have removed pg-test-delay-*.cfg when refreshing pg-test).
func TestRenderOutRemovesStale(t *testing.T) {
	standby := "        pg_services: [ { name: standby, port: 5435, selector: \"[]\" } ]\n"
	withStandby := func(t *testing.T) string {
		data, err := os.ReadFile(sandbox)
		require.NoError(t, err)
		s := strings.Replace(string(data), "        pg_vip_address: 10.10.10.2/24\n", "        pg_vip_address: 10.10.10.2/24\n"+standby, 1)
		s = strings.Replace(s, "        pg_vip_address: 10.10.10.3/24\n", "        pg_vip_address: 10.10.10.3/24\n"+standby, 1)
		return writeFile(t, t.TempDir(), "prev.yml", s)
	}
	foreign := map[string]string{
		"pg-test-old.cfg":           "listen pg-test-old\n    bind *:5499\n", // no marker
		"pg-test-delay-primary.cfg": "# service: pg-test-delay-primary @ *:5433 (managed by pgsvc: edits are overwritten)\n# cluster pg-test-delay\n",
		"pg-test-nocluster.cfg":     "# service: x @ *:1 (managed by pgsvc: edits are overwritten)\nlisten x\n", // no # cluster line
		"pg-test-standby.cfg.bak":   "# service: pg-test-standby @ *:5435 (managed by pgsvc: edits are overwritten)\n# cluster pg-test\n",
	}
	current := []string{"pg-meta-default.cfg", "pg-meta-offline.cfg", "pg-meta-primary.cfg", "pg-meta-replica.cfg",
		"pg-test-default.cfg", "pg-test-offline.cfg", "pg-test-primary.cfg", "pg-test-replica.cfg"}
	tests := []struct {
		name    string
		args    []string
		removed []string
		msg     string
	}{
		{"every cluster", nil, []string{"pg-meta-standby.cfg", "pg-test-standby.cfg"}, "8 service files in {dir}, 0 written, 8 unchanged, 2 removed"},
		{"--cluster: only its files", []string{"--cluster", "pg-test"}, []string{"pg-test-standby.cfg"}, "4 service files in {dir}, 0 written, 4 unchanged, 1 removed"},
		{"--node: only the clusters it carries", []string{"--node", "10.10.10.10"}, []string{"pg-meta-standby.cfg"}, "4 service files in {dir}, 0 written, 4 unchanged, 1 removed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			code, _, stderr := runCLI(t, "render", "--inventory", withStandby(t), "--out", dir)
			require.Equal(t, 0, code, stderr)
			for name, data := range foreign {
				writeFile(t, dir, name, data)
			}
			before := map[string]bool{}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range entries {
				before[e.Name()] = true
			}
			require.True(t, before["pg-test-standby.cfg"] && before["pg-meta-standby.cfg"])

			code, _, stderr = runCLI(t, append([]string{"render", "--inventory", sandbox, "--out", dir}, tt.args...)...)
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, strings.ReplaceAll(tt.msg, "{dir}", dir)+"\n", stderr)
			want := map[string]bool{}
			for name := range before {
				want[name] = true
			}
			for _, name := range tt.removed {
				delete(want, name)
			}
			if len(tt.args) > 0 && tt.args[0] == "--cluster" {
				want[dataplaneapiFingerprintFile(t, dir)] = true // --cluster pg-test's own fingerprint
			}
			got := map[string]bool{}
			entries, err = os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range entries {
				got[e.Name()] = true
			}
			assert.Equal(t, want, got)
			for name, data := range foreign {
				b, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				assert.Equal(t, data, string(b), "%s untouched", name)
			}
			for _, name := range current {
				assert.True(t, got[name], name)
			}
		})
	}
}

// TestValidateChecksEveryNode: validate without --node checks the services
// each node carries, as --node does for one; a proxy group shared by two
// clusters binding the same port passed before.
func TestValidateChecksEveryNode(t *testing.T) {
	cluster := func(name, host, provider, extra string) string {
		return fmt.Sprintf("    %s: { hosts: { %s: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: %s, pg_service_provider: %q %s } }\n",
			name, host, name, provider, extra)
	}
	head := "all:\n  children:\n    proxy: { hosts: { 10.0.0.9: {}, 10.0.0.10: {} } }\n"
	ports := func(base int) string {
		return fmt.Sprintf(`, pg_default_services: [{ name: primary, port: %d, selector: "[]" }]`, base)
	}
	tests := []struct {
		name, inv string
		want      string // "" = valid
	}{
		{"local clusters never share a node", head + cluster("pg-a", "10.0.0.1", "", "") + cluster("pg-b", "10.0.0.2", "", ""), ""},
		{"proxy clusters on distinct ports", head + cluster("pg-a", "10.0.0.1", "proxy", ports(10001)) + cluster("pg-b", "10.0.0.2", "proxy", ports(10002)), ""},
		{"proxy clusters on one port, distinct addresses", head +
			cluster("pg-a", "10.0.0.1", "proxy", `, pg_default_services: [{ name: primary, ip: 10.0.0.91, port: 10001, selector: "[]" }]`) +
			cluster("pg-b", "10.0.0.2", "proxy", `, pg_default_services: [{ name: primary, ip: 10.0.0.92, port: 10001, selector: "[]" }]`), ""},
		{"proxy clusters on one port", head + cluster("pg-a", "10.0.0.1", "proxy", ports(10001)) + cluster("pg-b", "10.0.0.2", "proxy", ports(10001)),
			"services pg-a-primary (*:10001) and pg-b-primary (*:10001) bind the same port on nodes 10.0.0.9, 10.0.0.10"},
		{"a provider group that does not exist: local", head + cluster("pg-a", "10.0.0.1", "nope", ports(10001)) + cluster("pg-b", "10.0.0.1", "nope", ports(10001)),
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := writeFile(t, t.TempDir(), "inv.yml", tt.inv)
			code, out, stderr := runCLI(t, "validate", "--inventory", inv)
			if tt.want == "" {
				assert.Equal(t, 0, code, stderr)
				assert.Contains(t, out, "services OK")
				return
			}
			assert.Equal(t, 1, code)
			assert.Equal(t, "pgsvc validate: "+inv+": "+tt.want+"\n", stderr)
		})
	}
}

func TestValidateSummary(t *testing.T) {
	code, out, stderr := runCLI(t, "validate", "--inventory", fixtures+"inventory/sandbox.yml")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "4 hosts, 2 clusters, 8 services OK")
	assert.Contains(t, out, "pg-test: 3 members, services primary:5433 replica:5434 default:5436 offline:5438 (on its members, schema v2)")
}

// BenchmarkRender runs the whole `pgsvc render` command over a generated
// inventory of 1,000 clusters (3-5 instances, four services each): read,
// validate, compute and render 4,000 listen sections, to stdout, into a fresh
// --out directory (4,000 new files), and into one that is already current.
func BenchmarkRender(b *testing.B) {
	dir := b.TempDir()
	inv := filepath.Join(dir, "inventory.yml")
	require.NoError(b, os.WriteFile(inv, gen.Inventory(1000), 0o644))
	render := func(b *testing.B, extra ...string) {
		if code, _, stderr := runCLI(b, append([]string{"render", "--inventory", inv}, extra...)...); code != 0 {
			b.Fatal(stderr)
		}
	}
	b.Run("stdout", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			render(b)
		}
	})
	b.Run("out-fresh", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			out, err := os.MkdirTemp(dir, "fresh-")
			require.NoError(b, err)
			render(b, "--out", out)
		}
	})
	b.Run("out-unchanged", func(b *testing.B) {
		out, err := os.MkdirTemp(dir, "current-")
		require.NoError(b, err)
		render(b, "--out", out)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			render(b, "--out", out)
		}
	})
}
