package reconcile_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/fixtures/gen"
	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/selector"
)

// 1,000 clusters × 4 services on one node, reloaded through a real master:
// one file per service is 4,000 config paths, past Linux's limit for the
// HAPROXY_CFGFILES string the 2.6 master exports when it re-executes
// itself (the reload would kill HAProxy), so pgsvc refuses it and leaves
// HAProxy and the files as they were; one file per cluster reloads.
func TestClusterLayoutReloadsAThousandClusters(t *testing.T) {
	const clusters = 1000
	hap := local.NewHAProxy(t)
	hap.Start() // an empty conf dir: the first pass adds every service
	inv := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(inv, gen.ProxyInventory(clusters, 20000), 0o644))
	m, err := selector.Load(inv)
	require.NoError(t, err)
	d, err := reconcile.Compute(m.Clusters, reconcile.Live{}, true)
	require.NoError(t, err)
	require.Len(t, d.Services, 4*clusters)

	ctx := context.Background()
	rt, err := dataplaneapi.NewRuntime(ctx, hap.StatsSocket)
	require.NoError(t, err)
	reloader, err := dataplaneapi.ParseReloader("master:" + hap.MasterSocket)
	require.NoError(t, err)
	syncer := func(layout dataplaneapi.Layout) *dataplaneapi.Syncer {
		return &dataplaneapi.Syncer{Runtime: rt, Config: &dataplaneapi.ConfigDir{Dir: hap.ConfDir, Layout: layout,
			MainConfig: hap.GlobalConfig, Reloader: reloader, StateFile: filepath.Join(hap.ConfDir, dataplaneapi.DefaultStateFile)}}
	}
	confFiles := func() []string {
		names, err := filepath.Glob(filepath.Join(hap.ConfDir, "*.cfg"))
		require.NoError(t, err)
		return names
	}

	_, err = syncer(dataplaneapi.LayoutService).Apply(ctx, d.Services, nil, nil, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reload refused: HAProxy would export 4002 config paths")
	assert.Contains(t, err.Error(), "haproxy_file_layout: cluster")
	assert.Contains(t, err.Error(), "the previous files were put back")
	assert.Empty(t, confFiles(), "as before the pass")
	all, err := rt.AllBackends(ctx)
	require.NoError(t, err, "HAProxy still answers")
	assert.Empty(t, all)

	s := syncer(dataplaneapi.LayoutCluster)
	rep, err := s.Apply(ctx, d.Services, nil, nil, false)
	require.NoError(t, err)
	assert.True(t, rep.Reloaded)
	assert.Len(t, confFiles(), clusters+1, "one file per cluster and the fingerprint file")
	all, err = rt.AllBackends(ctx)
	require.NoError(t, err)
	assert.Len(t, all, 4*clusters, "the new worker serves every service")

	rep, err = s.Apply(ctx, d.Services, nil, nil, false)
	require.NoError(t, err)
	assert.Empty(t, rep.Commands)
	assert.Empty(t, rep.Written)
	assert.Empty(t, rep.Reload, "converged: HAProxy runs the cluster files")
}
