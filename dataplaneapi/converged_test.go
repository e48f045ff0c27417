package dataplaneapi

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
)

// countingReloader is the real reloader, counted: what pgsvc asked for.
type countingReloader struct {
	Reloader
	calls atomic.Int32
}

func (r *countingReloader) Reload(ctx context.Context) error {
	r.calls.Add(1)
	return r.Reloader.Reload(ctx)
}

func masterReloads(t *testing.T, hap *local.HAProxy) int {
	t.Helper()
	st, err := ReadMaster(context.Background(), hap.MasterSocket)
	require.NoError(t, err)
	return st.Reloads
}

// Pins two defects of a conf dir HAProxy does not load (-f elsewhere).
// The reload of a structural change is not confirmed and the previous
// files are put back; that changed the files' fingerprint, which cleared
// the stuck state, so every retry reloaded again (four passes, four
// reloads). And keyed passes meanwhile returned no error, so /readyz said
// ok while HAProxy ran another structure.
func TestUnconfirmedReloadIsNotRepeated(t *testing.T) {
	hap, _, s := socketLab(t)
	ctx := context.Background()
	// pgsvc's dir holds what HAProxy runs, but HAProxy loads hap.ConfDir.
	dir := t.TempDir()
	names, err := cfgFiles(hap.ConfDir)
	require.NoError(t, err)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(hap.ConfDir, n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), data, 0o644))
	}
	rt, err := NewRuntime(ctx, hap.StatsSocket)
	require.NoError(t, err)
	sy := &Syncer{Runtime: rt, Config: &ConfigDir{Dir: dir, MainConfig: hap.GlobalConfig,
		Reloader: &MasterReloader{Socket: hap.MasterSocket, Timeout: 10 * time.Second}}}
	rep, err := sy.Apply(ctx, []reconcile.Service{*s}, nil, nil, false)
	require.NoError(t, err, "the same files: HAProxy runs their fingerprint")
	require.False(t, rep.Reloaded)

	added := *s
	added.Name, added.Port = "pg-test-added", local.FreePort(t, "127.0.0.1")
	services := []reconcile.Service{*s, added}
	reloads := masterReloads(t, hap)
	keyed := map[string]bool{s.Cluster: true}
	for i, clusters := range []map[string]bool{nil, nil, keyed, nil, keyed} {
		rep, err := sy.Apply(ctx, services, clusters, nil, false)
		require.Error(t, err, "pass %d (keyed: %v) reports that HAProxy does not run the files", i+1, clusters != nil)
		t.Logf("pass %d: %v", i+1, err)
		assert.Contains(t, err.Error(), "does it load that directory", "pass %d", i+1)
		assert.NotEmpty(t, rep.Reload, "pass %d: the structural difference is reported", i+1)
		assert.Equal(t, reloads+1, masterReloads(t, hap), "pass %d: one reload in all", i+1)
	}
}

// Pins: a reload for drift alone (the files already current, HAProxy
// running another fingerprint) skipped `haproxy -c`, so a hand-written
// file declaring one of pgsvc's proxies, added since HAProxy loaded the
// dir, failed the reload instead of being reported with haproxy's reason.
func TestDriftReloadIsCheckedFirst(t *testing.T) {
	hap, sy, s := socketLab(t)
	ctx := context.Background()
	reloader := &countingReloader{Reloader: &MasterReloader{Socket: hap.MasterSocket, Timeout: 10 * time.Second}}
	sy.Config.Reloader, sy.ReloadWait = reloader, 3*time.Second
	// The files say leastconn, HAProxy was not reloaded: it runs another
	// fingerprint.
	changed := *s
	changed.Balance = "leastconn"
	files, err := Files(&reconcile.Desired{Services: []reconcile.Service{changed}}, LayoutService)
	require.NoError(t, err)
	_, err = WriteFiles(hap.ConfDir, files)
	require.NoError(t, err)
	require.NoError(t, WriteFingerprint(hap.ConfDir, nil, ""))
	custom := filepath.Join(hap.ConfDir, "custom.cfg")
	require.NoError(t, os.WriteFile(custom, []byte("listen "+s.Name+"\n    bind 127.0.0.1:"+strconv.Itoa(local.FreePort(t, "127.0.0.1"))+"\n"), 0o644))

	rep, err := sy.Apply(ctx, []reconcile.Service{changed}, nil, nil, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "haproxy -c rejected the config a restart would load")
	t.Logf("%v", err)
	assert.Contains(t, err.Error(), custom, "haproxy's own reason, naming the hand-written file")
	assert.Equal(t, int32(0), reloader.calls.Load(), "no reload attempted")
	assert.False(t, rep.Reloaded)
	assert.NotEmpty(t, rep.Reload, "the drift is reported")
}

// Pins: a reload whose only change removes a service file skipped
// `haproxy -c`, so a hand-written file clashing with a service that stays
// failed the reload instead of being reported before anything changed.
func TestRemovalReloadIsCheckedFirst(t *testing.T) {
	reloader := &countingReloader{Reloader: &CommandReloader{Argv: []string{"true"}}}
	c, s := persistLab(t, reloader)
	gone := *s
	gone.Name, gone.Port = "pg-test-gone", 15435
	_, err := c.Persist(context.Background(), []reconcile.Service{*s, gone}, true, false)
	require.NoError(t, err)
	require.Equal(t, int32(1), reloader.calls.Load())
	require.NoError(t, os.WriteFile(filepath.Join(c.Dir, "custom.cfg"), []byte("listen "+s.Name+"\n    bind 127.0.0.1:15999\n"), 0o644))

	res, err := c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.Error(t, err)
	assert.Equal(t, []string{"pg-test-gone.cfg"}, res.Removed)
	assert.Contains(t, err.Error(), "haproxy -c rejected the config a restart would load")
	assert.Contains(t, err.Error(), filepath.Join(c.Dir, "custom.cfg"))
	assert.Equal(t, int32(1), reloader.calls.Load(), "no reload attempted")
	_, err = os.Stat(filepath.Join(c.Dir, "pg-test-gone.cfg"))
	assert.NoError(t, err, "nothing removed")
}
