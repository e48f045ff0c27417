package dataplaneapi

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
)

// socketLab is a real HAProxy (the one on PATH) running one rendered
// replica service and the fingerprint file, as `pgsvc render --out` leaves
// them; its servers point at closed loopback ports (their checks fail).
func socketLab(t *testing.T) (*local.HAProxy, *Syncer, *reconcile.Service) {
	t.Helper()
	hap := local.NewHAProxy(t)
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	s.IP, s.Port, s.Maxconn, s.Balance = "127.0.0.1", local.FreePort(t, "127.0.0.1"), 100, "roundrobin"
	for i := range s.Servers {
		s.Servers[i].Port, s.Servers[i].CheckPort = local.FreePort(t, "127.0.0.1"), local.FreePort(t, "127.0.0.1")
	}
	files, err := Files(&reconcile.Desired{Services: []reconcile.Service{*s}}, LayoutService)
	require.NoError(t, err)
	_, err = WriteFiles(hap.ConfDir, files)
	require.NoError(t, err)
	require.NoError(t, WriteFingerprint(hap.ConfDir, nil, ""))
	hap.Start()
	rt, err := NewRuntime(context.Background(), hap.StatsSocket)
	require.NoError(t, err)
	return hap, &Syncer{Runtime: rt, Config: &ConfigDir{Dir: hap.ConfDir, MainConfig: hap.GlobalConfig}}, s
}

// The state pgsvc reads from a real socket: slots, checks, backup flags,
// and the fingerprint HAProxy loaded.
func TestRealSocketState(t *testing.T) {
	_, sy, s := socketLab(t)
	ctx := context.Background()
	b, err := sy.Runtime.Backend(ctx, s.Name)
	require.NoError(t, err)
	require.Len(t, b.Slots, 6)
	for name, slot := range b.Slots {
		assert.True(t, slot.Checked, "%s is health-checked", name)
		assert.Equal(t, strings.HasSuffix(name, BackupSuffix), slot.Backup, name)
	}
	assert.Equal(t, AdminReady, b.Slots["pg-test-1.b"].Admin)
	assert.Equal(t, AdminMaint, b.Slots["pg-test-1"].Admin)
	_, _, drift, err := sy.fingerprintDrift(ctx)
	require.NoError(t, err)
	assert.Empty(t, drift, "HAProxy runs the files")
	_, err = sy.Runtime.Backend(ctx, "pg-none")
	assert.ErrorIs(t, err, ErrNoBackend)
}

// A command counts as applied only when HAProxy's state shows it: an empty
// reply proves nothing (client-native ends a reply at a read error).
func TestReadBackCountsWhatHAProxyShows(t *testing.T) {
	_, sy, s := socketLab(t)
	ctx := context.Background()
	weight := cmd(s.Name, "pg-test-2", "weight", "100", "42", "set server %s/pg-test-2 weight 42", s.Name)
	lost := cmd(s.Name, "pg-test-3", "weight", "100", "43", "set server %s/pg-test-3 weight 43", s.Name) // never reached HAProxy
	drain := cmd(s.Name, "pg-test-2.b", "state", "maint", "drain", "set server %s/pg-test-2.b state drain", s.Name)
	lostToo := cmd(s.Name, "pg-test-3.b", "state", "maint", "ready", "set server %s/pg-test-3.b state ready", s.Name) // never sent either
	batch := []sent{{"pg-test", weight}, {"pg-test", lost}, {"pg-test", drain}, {"pg-test", lostToo}}
	reads, parse := readBackPlan(batch, false)
	verdicts, replies, err := sy.Runtime.ApplyAll(ctx, []Command{weight, drain}, reads) // what HAProxy got
	require.NoError(t, err)
	assert.Equal(t, []error{nil, nil}, verdicts, "empty replies: accepted, which proves nothing yet")
	states, err := parse(replies)
	require.NoError(t, err)
	ok, failed := judge(batch, states)
	require.Len(t, ok, 2)
	assert.Equal(t, weight.Line, ok[0].cmd.Line)
	assert.Equal(t, drain.Line, ok[1].cmd.Line)
	assert.Contains(t, failed["pg-test"].Error(), `haproxy accepted "set server pg-test-replica/pg-test-3.b state ready" but does not show it: admin maint`)
	require.Contains(t, failed, "pg-test")
	assert.Contains(t, failed["pg-test"].Error(), `haproxy accepted "set server pg-test-replica/pg-test-3 weight 43" but does not show it: admin ready, status`)
}

// A `show servers state` reply cut at a line boundary parses cleanly on its
// own; `show stat` listing a server it lacks makes it an error, not a
// missing server (which would read as structural and cost a reload).
func TestCutServersStateIsAnError(t *testing.T) {
	hap, _, s := socketLab(t)
	state := strings.TrimSpace(hap.Exec("show servers state " + s.Name))
	stat := hap.Exec("show stat " + s.Name + " 4 -1")
	lines := strings.Split(state, "\n")
	cut := strings.Join(lines[:len(lines)-1], "\n") + "\n"
	slots, err := ParseServersState(cut)
	require.NoError(t, err, "a cut at a line boundary parses")
	assert.Len(t, slots, 5)
	err = ParseStat(stat, slots)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "show servers state: incomplete reply, no line for server pg-test-replica/")

	full, err := ParseServersState(state)
	require.NoError(t, err)
	require.NoError(t, ParseStat(stat, full), "the whole reply is complete")
}

// A restarted container's worker often has the pid of the one before it
// (pid 8 every time): a worker is its pid and its start time, read from a
// whole-second uptime, so readings a second apart are one worker and a
// restart with the same pid is another.
func TestWorkerIdentity(t *testing.T) {
	t0 := time.Now()
	w := worker{pid: "8", started: t0}
	assert.True(t, w.same(worker{pid: "8", started: t0.Add(time.Second)}), "uptime rounding")
	assert.False(t, w.same(worker{pid: "8", started: t0.Add(30 * time.Second)}), "restarted with the same pid")
	assert.False(t, w.same(worker{pid: "9", started: t0}), "another pid")

	_, sy, _ := socketLab(t)
	a, err := sy.worker(context.Background())
	require.NoError(t, err)
	b, err := sy.worker(context.Background())
	require.NoError(t, err)
	assert.True(t, a.same(b), "two readings of a real worker: %+v %+v", a, b)
}

// After a reload pgsvc makes, the new worker keeps the old one's health:
// non-leaders forced down in a primary service stay down, where without
// the server-state file the new worker starts every enabled slot UP until
// its checks run. HAProxy runs a new worker's first check of its first
// server at once and spreads the others over inter (60s here): the first
// member is left out (its closed check port takes it down either way),
// pg-test-3 leads and pg-test-2 shows what the new worker started with.
// No Patroni
// facts are given to the second pass, so pgsvc's own forcing after the
// reload does not hide what the new worker started with.
func TestReloadKeepsHealthThroughStateFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stateFile bool
		wantDown  bool
	}{
		{"with the server-state file", true, true},
		{"without it (HAProxy's default)", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hap := local.NewHAProxy(t)
			s := replica(reconcile.Active, reconcile.Active, reconcile.Active)
			s.Name, s.CheckURI = "pg-test-primary", "/primary"
			s.IP, s.Port, s.Maxconn, s.Balance, s.Options = "127.0.0.1", local.FreePort(t, "127.0.0.1"), 100, "roundrobin", "inter 60s fall 3 rise 1"
			for i := range s.Servers {
				s.Servers[i].Host, s.Servers[i].Port, s.Servers[i].CheckPort = "127.0.0.1", local.FreePort(t, "127.0.0.1"), local.FreePort(t, "127.0.0.1")
			}
			var state string
			if tc.stateFile {
				state = filepath.Join(hap.ConfDir, DefaultStateFile)
			}
			files, err := Files(&reconcile.Desired{Services: []reconcile.Service{*s}}, LayoutService)
			require.NoError(t, err)
			_, err = WriteFiles(hap.ConfDir, files)
			require.NoError(t, err)
			require.NoError(t, WriteFingerprint(hap.ConfDir, nil, state))
			hap.Start()
			ctx := context.Background()
			rt, err := NewRuntime(ctx, hap.StatsSocket)
			require.NoError(t, err)
			sy := &Syncer{Runtime: rt, Config: &ConfigDir{Dir: hap.ConfDir, MainConfig: hap.GlobalConfig, StateFile: state,
				Reloader: &MasterReloader{Socket: hap.MasterSocket, Timeout: 10 * time.Second}}}

			lead := map[string]reconcile.Accel{"pg-test": {Leader: "pg-test-3"}}
			_, err = sy.Apply(ctx, []reconcile.Service{*s}, nil, lead, false)
			require.NoError(t, err)
			b, err := rt.Backend(ctx, s.Name)
			require.NoError(t, err)
			require.False(t, b.Slots["pg-test-2"].Up(), "a new worker's non-leaders are forced down")
			before, err := sy.worker(ctx)
			require.NoError(t, err)

			added := *s
			added.Name, added.Port = "pg-test-primary2", local.FreePort(t, "127.0.0.1")
			rep, err := sy.Apply(ctx, []reconcile.Service{*s, added}, nil, nil, false)
			require.NoError(t, err)
			require.True(t, rep.Reloaded, "a service added is a reload")
			after, err := sy.worker(ctx)
			require.NoError(t, err)
			require.NotEqual(t, before.pid, after.pid)

			b, err = rt.Backend(ctx, s.Name)
			require.NoError(t, err)
			assert.True(t, b.Slots["pg-test-3"].Up(), "the leader: %+v", b.Slots["pg-test-3"])
			assert.Equal(t, tc.wantDown, !b.Slots["pg-test-2"].Up(), "a non-leader in the new worker: %+v", b.Slots["pg-test-2"])
			if tc.stateFile {
				data, err := os.ReadFile(state)
				require.NoError(t, err)
				assert.Empty(t, data, "emptied once the new worker runs: a later reload by anyone loads no stale health")
			}
		})
	}
}
