package main

import (
	"flag"
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
		// Live snapshots recorded from a real Patroni 3.0.2 (and the 4.x variant).
		{"live-p3-switchover.cfg", []string{"render", "--inventory", sandbox, "--cluster", "pg-test", "--state", fixtures + "patroni/p3-switchover.json"}},
		{"live-p4-switchover.cfg", []string{"render", "--inventory", sandbox, "--cluster", "pg-test", "--state", fixtures + "patroni/p4-switchover.json"}},
		{"live-p3-stopped-member.cfg", []string{"render", "--inventory", sandbox, "--cluster", "pg-test", "--state", fixtures + "patroni/p3-stopped-member.json"}},
		{"live-p3-crash-failover.cfg", []string{"render", "--inventory", sandbox, "--cluster", "pg-test", "--state", fixtures + "patroni/p3-crash-failover.json"}},
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
		{"plan-p3-steady.txt", "p3-steady.json", "text", 0},
		{"plan-p3-switchover.txt", "p3-switchover.json", "text", 2},
		{"plan-p3-switchover.json", "p3-switchover.json", "json", 2},
		{"plan-p4-switchover.txt", "p4-switchover.json", "text", 2},
		{"plan-p3-crash-failover.txt", "p3-crash-failover.json", "text", 2},
		{"plan-p3-no-leader.txt", "p3-no-leader.json", "text", 0},
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
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		all.Write(b)
	}
	assert.Equal(t, []string{"pg-test-default.cfg", "pg-test-offline.cfg", "pg-test-primary.cfg", "pg-test-replica.cfg"}, names, "one file per service, no temporaries left")
	_, stdout, _ := runCLI(t, "render", "--inventory", inv, "--cluster", "pg-test")
	assert.Equal(t, stdout, all.String())
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
