package dataplaneapi

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Replies captured from Debian's HAProxy 2.6.12 with a rendered replica
// service: pg-test-1 in its backup slot, pg-test-2 drained by hand.
const serversState = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
5 pg-test-replica 1 pg-test-1 127.0.0.11 0 5 100 100 0 1 0 0 14 0 0 0 - 6432 - 0 8008 - - 8008
5 pg-test-replica 2 pg-test-1.b 127.0.0.11 2 4 100 100 0 1 0 3 6 0 0 0 - 6432 - 0 8008 - - 8008
5 pg-test-replica 3 pg-test-2 127.0.0.12 2 8 100 100 0 1 0 3 6 0 0 0 - 6432 - 0 8008 - - 8008
5 pg-test-replica 4 pg-test-2.b 127.0.0.12 0 5 100 100 0 1 0 0 14 0 0 0 - 6432 - 0 8008 - - 8008
5 pg-test-replica 5 pg-test-3 127.0.0.13 2 0 40 40 0 1 0 3 6 0 0 0 - 6432 - 0 8008 - - 8008
5 pg-test-replica 6 pg-test-3.b 127.0.0.13 0 5 100 100 0 1 0 0 14 0 0 0 - 6432 - 0 8008 - - 8008
`

const showStat = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck
pg-test-replica,pg-test-1,0,0,0,0,3000,0,0,0,,0,,0,0,0,0,MAINT,100,1,0
pg-test-replica,pg-test-1.b,0,0,0,0,3000,0,0,0,,0,,0,0,0,0,UP,100,0,1
pg-test-replica,pg-test-2,0,0,0,0,3000,0,0,0,,0,,0,0,0,0,DRAIN,100,1,0
pg-test-replica,pg-test-2.b,0,0,0,0,3000,0,0,0,,0,,0,0,0,0,MAINT,100,0,1
pg-test-replica,pg-test-3,0,0,0,0,3000,0,0,0,,0,,0,0,0,0,UP 1/3,40,1,0
pg-test-replica,pg-test-3.b,0,0,0,0,3000,0,0,0,,0,,0,0,0,0,MAINT,100,0,1
`

func parsed(t *testing.T) BackendState {
	t.Helper()
	slots, err := ParseServersState(serversState)
	require.NoError(t, err)
	require.NoError(t, ParseStat(showStat, slots))
	return BackendState{Name: "pg-test-replica", Slots: slots}
}

func TestParseState(t *testing.T) {
	b := parsed(t)
	assert.Equal(t, SlotState{Name: "pg-test-1", Addr: "127.0.0.11", Port: 6432, CheckPort: 8008, Checked: true, Admin: AdminMaint, UWeight: 100, Status: "MAINT", Op: OpStopped}, b.Slots["pg-test-1"])
	assert.Equal(t, AdminReady, b.Slots["pg-test-1.b"].Admin, "a `disabled` slot set ready keeps bit 0x04 and takes traffic")
	assert.True(t, b.Slots["pg-test-1.b"].Backup)
	assert.Equal(t, AdminDrain, b.Slots["pg-test-2"].Admin)
	assert.Equal(t, 40, b.Slots["pg-test-3"].UWeight)
	assert.True(t, b.Slots["pg-test-3"].Up())
	assert.False(t, b.Slots["pg-test-2.b"].Up())

	_, err := ParseServersState("[3]: Can't find backend.\n")
	assert.ErrorContains(t, err, "unexpected reply")
	_, err = ParseServersState("1\n5 pg-test-replica 1 pg-test-1\n")
	assert.ErrorContains(t, err, "short line")
	assert.ErrorContains(t, ParseStat("Unknown command", map[string]SlotState{}), "no pxname column")

	// A reply cut short (the last rows missing) is an error, not servers
	// without a backup flag, and the slots are left as they were.
	slots, err := ParseServersState(serversState)
	require.NoError(t, err)
	before := maps.Clone(slots)
	short := strings.Join(strings.SplitAfter(showStat, "\n")[:4], "")
	assert.ErrorContains(t, ParseStat(short, slots), "show stat: incomplete reply, no row for server")
	assert.Equal(t, before, slots)
}

func replica(slots ...reconcile.Slot) *reconcile.Service {
	s := &reconcile.Service{Name: "pg-test-replica", Cluster: "pg-test", HTTPCheck: true, CheckURI: "/read-only"}
	for i, sl := range slots {
		name := []string{"pg-test-1", "pg-test-2", "pg-test-3"}[i]
		addr := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}[i]
		s.Servers = append(s.Servers, reconcile.Server{Name: name, Host: addr, Port: 6432, CheckPort: 8008, Weight: 100, Slot: sl, Member: i})
	}
	return s
}

func lines(cmds []Command) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, c.Line)
	}
	return out
}

func TestPlanService(t *testing.T) {
	b := parsed(t)
	tests := []struct {
		name    string
		service *reconcile.Service
		accel   reconcile.Accel
		want    []string
	}{
		{"hand edits repaired: drained slot readied, weight restored",
			replica(reconcile.Backup, reconcile.Active, reconcile.Active), reconcile.Accel{},
			[]string{"set server pg-test-replica/pg-test-3 weight 100", "set server pg-test-replica/pg-test-2 state ready"}},
		{"switchover: backup slot readied (sibling up: starts up), active drained",
			replica(reconcile.Active, reconcile.Backup, reconcile.Active), reconcile.Accel{},
			[]string{"set server pg-test-replica/pg-test-3 weight 100",
				"set server pg-test-replica/pg-test-1 state ready", // its twin 1.b is UP: no forced health
				"set server pg-test-replica/pg-test-2.b state ready",
				"set server pg-test-replica/pg-test-1.b state drain"}},
		{"member out: its enabled slot drains, nothing is killed",
			replica(reconcile.Out, reconcile.Active, reconcile.Active), reconcile.Accel{},
			[]string{"set server pg-test-replica/pg-test-3 weight 100", "set server pg-test-replica/pg-test-2 state ready",
				"set server pg-test-replica/pg-test-1.b state drain"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := PlanService(tc.service, b, tc.accel)
			require.NoError(t, err)
			assert.Equal(t, tc.want, lines(cmds))
		})
	}
}

func TestPlanServiceConvergedIsEmpty(t *testing.T) {
	b := parsed(t)
	b.Slots["pg-test-2"] = SlotState{Name: "pg-test-2", Addr: "127.0.0.12", Port: 6432, CheckPort: 8008, Checked: true, UWeight: 100, Status: "UP", Op: OpRunning}
	s3b := b.Slots["pg-test-3.b"]
	s3b.UWeight = 40
	b.Slots["pg-test-3.b"] = s3b
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	s.Servers[2].Weight = 40
	cmds, err := PlanService(s, b, reconcile.Accel{})
	require.NoError(t, err)
	assert.Empty(t, cmds)
}

func TestPlanAddressAndAccel(t *testing.T) {
	b := parsed(t)
	s := replica(reconcile.Active, reconcile.Active, reconcile.Active)
	s.Name, s.CheckURI = "pg-test-primary", "/primary"
	for k, v := range b.Slots {
		v.Admin, v.UWeight = AdminReady, 100
		if !v.Backup {
			v.Status, v.Op = "UP", OpRunning
		}
		b.Slots[k] = v
	}
	b.Slots["pg-test-2"] = SlotState{Name: "pg-test-2", Addr: "127.0.0.12", Port: 6432, CheckPort: 8008, Checked: true, UWeight: 100, Status: "DOWN", Op: OpStopped}
	s.Servers[2].Host, s.Servers[2].Port, s.Servers[2].CheckPort = "127.0.0.23", 6433, 8009
	cmds, err := PlanService(s, b, reconcile.Accel{Down: []string{"pg-test-1"}, Up: "pg-test-2"})
	require.NoError(t, err)
	// Order: addresses first (both slots), drains (nothing new lands on a
	// slot that leaves), the old primary forced down (every slot HAProxy
	// shows up) before the new one is forced up (never two at once), and
	// sessions shut last.
	assert.Equal(t, []string{
		"set server pg-test-primary/pg-test-3 addr 127.0.0.23 port 6433",
		"set server pg-test-primary/pg-test-3 check-port 8009",
		"set server pg-test-primary/pg-test-3.b addr 127.0.0.23 port 6433",
		"set server pg-test-primary/pg-test-3.b check-port 8009",
		"set server pg-test-primary/pg-test-1.b state drain",
		"set server pg-test-primary/pg-test-2.b state drain",
		"set server pg-test-primary/pg-test-3.b state drain",
		"set server pg-test-primary/pg-test-1 health down",
		"set server pg-test-primary/pg-test-1.b health down",
		"set server pg-test-primary/pg-test-2 health up",
		"shutdown sessions server pg-test-primary/pg-test-1",
		"shutdown sessions server pg-test-primary/pg-test-1.b",
	}, lines(cmds))
}

// Forcing follows what HAProxy shows: a member the checks already took
// down gets no health command, and its sessions are shut only if it has any.
func TestPlanAccelFollowsObservedState(t *testing.T) {
	b := parsed(t)
	s := replica(reconcile.Active, reconcile.Active, reconcile.Active)
	s.Name, s.CheckURI = "pg-test-primary", "/primary"
	for k, v := range b.Slots {
		v.Admin, v.UWeight, v.Status, v.Op = AdminReady, 100, "DOWN", OpStopped
		if v.Backup {
			v.Admin, v.Status = AdminMaint, "MAINT"
		}
		b.Slots[k] = v
	}
	b.Slots["pg-test-2"] = SlotState{Name: "pg-test-2", Addr: "127.0.0.12", Port: 6432, CheckPort: 8008, Checked: true, UWeight: 100, Status: "UP", Op: OpRunning}
	down := b.Slots["pg-test-3"]
	down.Sessions = 2 // DOWN, sessions kept (no on-marked-down shutdown-sessions)
	b.Slots["pg-test-3"] = down
	cmds, err := PlanService(s, b, reconcile.Accel{Down: []string{"pg-test-1", "pg-test-3"}, Up: "pg-test-2"})
	require.NoError(t, err)
	assert.Equal(t, []string{"shutdown sessions server pg-test-primary/pg-test-3"}, lines(cmds), "pg-test-2 is already up; pg-test-1 is down with no sessions")
}

// An address that is a DNS name: HAProxy resolved it when it loaded the
// file (show servers state: srv_fqdn) and refuses names in `set server
// addr`. The same name is in sync; a new port still moves live; a new name
// is the file's (a reload), never a command HAProxy would refuse.
func TestPlanDNSNameAddress(t *testing.T) {
	withName := func(fqdn string, port int) BackendState {
		b := parsed(t)
		for _, slot := range []string{"pg-test-1", "pg-test-1.b"} {
			v := b.Slots[slot]
			v.Addr, v.FQDN, v.Port = "127.0.0.1", fqdn, port
			b.Slots[slot] = v
		}
		return b
	}
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	s.Servers[0].Host = "db1.example"
	tests := []struct {
		name   string
		actual BackendState
		want   []string
		reload string
	}{
		{"same name: nothing for the address", withName("db1.example", 6432), nil, ""},
		{"same name, new port: live, at the address HAProxy resolved", withName("db1.example", 6431),
			[]string{"set server pg-test-replica/pg-test-1 addr 127.0.0.1 port 6432", "set server pg-test-replica/pg-test-1.b addr 127.0.0.1 port 6432"}, ""},
		{"another name: a reload", withName("db0.example", 6432), nil,
			"pg-test-replica/pg-test-1 address db1.example is a DNS name (HAProxy resolves names when it loads the config; it has db0.example (127.0.0.1):6432)"},
		{"an IP loaded, a name wanted: a reload", withName("", 6432), nil,
			"pg-test-replica/pg-test-1 address db1.example is a DNS name (HAProxy resolves names when it loads the config; it has 127.0.0.1:6432)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := PlanService(s, tc.actual, reconcile.Accel{})
			if tc.reload != "" {
				var se *StructuralError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tc.reload, se.Reason)
				return
			}
			require.NoError(t, err)
			var addr []string
			for _, c := range cmds {
				if c.Kind == "addr" {
					addr = append(addr, c.Line)
				}
			}
			assert.Equal(t, tc.want, addr)
		})
	}
}

// A primary-only custom service whose selector drops the demoted primary:
// its slot drains and its sessions are shut at once.
func TestPlanAccelDemotedPrimaryLeavesService(t *testing.T) {
	b := parsed(t)
	for k, v := range b.Slots {
		v.Admin, v.UWeight, v.Status = AdminMaint, 100, "MAINT"
		b.Slots[k] = v
	}
	b.Slots["pg-test-1"] = SlotState{Name: "pg-test-1", Addr: "127.0.0.11", Port: 6432, CheckPort: 8008, Checked: true, UWeight: 100, Admin: AdminReady, Status: "UP", Op: OpRunning}
	s := replica(reconcile.Out, reconcile.Active, reconcile.Out)
	s.Name, s.CheckURI = "pg-test-primary", "/primary"
	cmds, err := PlanService(s, b, reconcile.Accel{Down: []string{"pg-test-1"}, Up: "pg-test-2"})
	require.NoError(t, err)
	// Pins the old order (shutdown, then health up, then drain), which left
	// the demoted primary the only usable server between its sessions'
	// shutdown and its drain, so new sessions landed on it: drain and
	// admit first, shut sessions last.
	assert.Equal(t, []string{
		"set server pg-test-primary/pg-test-2 state ready",
		"set server pg-test-primary/pg-test-2 health down", // leaves MAINT with its twin in MAINT: the checks admit it...
		"set server pg-test-primary/pg-test-1 state drain",
		"set server pg-test-primary/pg-test-1 health down",
		"set server pg-test-primary/pg-test-2 health up",     // ...unless it is the new leader, forced up after the old one is down
		"shutdown sessions server pg-test-primary/pg-test-1", // last, and only the slot that carried traffic
	}, lines(cmds))
}

func indexOf(l []string, s string) int {
	for i, v := range l {
		if v == s {
			return i
		}
	}
	return -1
}

func TestPlanStructural(t *testing.T) {
	b := parsed(t)
	delete(b.Slots, "pg-test-3.b")
	_, err := PlanService(replica(reconcile.Backup, reconcile.Active, reconcile.Active), b, reconcile.Accel{})
	var se *StructuralError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "pg-test-replica has no server pg-test-3.b", se.Reason)
}

func TestCheckReply(t *testing.T) {
	addr := Command{Kind: "addr", Line: "set server b/s addr 10.0.0.1 port 5432"}
	assert.NoError(t, CheckReply(addr, "[4]: IP changed from '127.0.0.11' to '10.0.0.1', port changed from '6432' to '5432' by 'stats socket command'"))
	assert.EqualError(t, CheckReply(addr, "[4]: Invalid addr 'bogus' by 'stats socket command'"), `haproxy refused "set server b/s addr 10.0.0.1 port 5432": [4]: Invalid addr 'bogus' by 'stats socket command'`)
	w := Command{Kind: "weight", Line: "set server b/s weight 300"}
	assert.NoError(t, CheckReply(w, "\n"))
	assert.ErrorContains(t, CheckReply(w, "[3]: Absolute weight can only be between 0 and 256 inclusive."), "Absolute weight")
	assert.ErrorContains(t, CheckReply(w, "No such server."), "No such server")
}

func TestParseShowProc(t *testing.T) {
	st, err := ParseShowProc(`#<PID>          <type>          <reloads>       <uptime>        <version>
31448           master          2 [failed: 1]   0d00h00m00s     2.6.12-1+deb12u4
# workers
31470           worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
31450           worker          1               0d00h00m10s     2.6.12-1+deb12u4
# programs
`)
	require.NoError(t, err)
	assert.Equal(t, MasterStatus{Reloads: 2, Failed: 1, Workers: []int{31470}}, st)
	_, err = ParseShowProc("Unknown command.")
	assert.Error(t, err)
}

func TestWriteFilesIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.cfg"), []byte("old a"), 0o644))
	// b.cfg cannot be replaced: a directory stands in its place.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "b.cfg"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.cfg", "x"), nil, 0o644))
	_, err := WriteFiles(dir, map[string][]byte{"a.cfg": []byte("new a"), "b.cfg": []byte("new b")})
	require.Error(t, err)
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"a.cfg", "b.cfg"}, names, "no temporaries left")
	a, _ := os.ReadFile(filepath.Join(dir, "a.cfg"))
	assert.Equal(t, "old a", string(a), "a.cfg (installed first) is put back when b.cfg fails")
	_, err = WriteFiles(dir, map[string][]byte{"a.cfg": []byte("new a"), "a2.cfg": []byte("new a2"), "b.cfg": []byte("new b")})
	require.Error(t, err)
	_, err = os.Stat(filepath.Join(dir, "a2.cfg"))
	assert.True(t, os.IsNotExist(err), "a new file installed before the failure is removed again")

	_, err = WriteFiles(dir, map[string][]byte{"a.cfg": []byte("new a")})
	require.NoError(t, err)

	written, err := WriteFiles(dir, map[string][]byte{"a.cfg": []byte("new a")})
	require.NoError(t, err)
	assert.Empty(t, written, "unchanged files are not rewritten")
}

// A file HAProxy rejects is never installed: haproxy -c (the real binary)
// runs on the candidate files before anything in the config dir changes.
func TestPersistRefusesWhatHAProxyRejects(t *testing.T) {
	dir := t.TempDir()
	global := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(global, []byte("global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"), 0o644))
	c := &ConfigDir{Dir: dir, MainConfig: global, Reloader: &CommandReloader{Argv: []string{"true"}}}
	good := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	good.IP, good.Port, good.Maxconn, good.Balance = "127.0.0.1", 15434, 100, "roundrobin"
	res, err := c.Persist(context.Background(), []reconcile.Service{*good}, true, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-test-replica.cfg", "pgsvc-fingerprint.cfg"}, res.Written)
	before, _ := os.ReadFile(filepath.Join(dir, "pg-test-replica.cfg"))

	bad := *good
	bad.Balance = "no-such-algorithm"
	_, err = c.Persist(context.Background(), []reconcile.Service{bad}, true, false)
	require.ErrorContains(t, err, "haproxy -c rejected the config a restart would load")
	require.ErrorContains(t, err, "nothing written")
	after, _ := os.ReadFile(filepath.Join(dir, "pg-test-replica.cfg"))
	assert.Equal(t, string(before), string(after))
}

// A keyed pass touches only its services' files; a full pass removes the
// managed files no service wants, and never a file pgsvc did not write.
func TestPersistScope(t *testing.T) {
	dir := t.TempDir()
	c := &ConfigDir{Dir: dir, Reloader: &CommandReloader{Argv: []string{"true"}}}
	stale := "# service: pg-old-primary @ *:5433 (managed by pgsvc: edits are overwritten)\nlisten pg-old-primary\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg-old-primary.cfg"), []byte(stale), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte("global\n"), 0o644))
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	s.IP, s.Port, s.Maxconn, s.Balance = "127.0.0.1", 15434, 100, "roundrobin"
	c.HAProxy = "true" // the check itself is covered by TestPersistRefusesWhatHAProxyRejects

	res, err := c.Persist(context.Background(), []reconcile.Service{*s}, false, false)
	require.NoError(t, err)
	assert.Empty(t, res.Removed, "a keyed pass leaves other services' files alone")
	_, err = os.Stat(filepath.Join(dir, "pg-old-primary.cfg"))
	require.NoError(t, err)

	res, err = c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-old-primary.cfg"}, res.Removed)
	assert.Equal(t, []string{"service pg-old-primary removed"}, res.Reload)
	_, err = os.Stat(filepath.Join(dir, "haproxy.cfg"))
	assert.NoError(t, err, "files without pgsvc's marker are never touched")

	// With --cluster, another cluster's managed file is not this pgsvc's.
	other := "# service: pg-other-primary @ *:6433 (managed by pgsvc: edits are overwritten)\n# cluster pg-other\nlisten pg-other-primary\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg-other-primary.cfg"), []byte(other), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg-test-old.cfg"), []byte(strings.Replace(other, "pg-other", "pg-test", 2)), 0o644))
	c.Clusters = []string{s.Cluster}
	res, err = c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-test-old.cfg"}, res.Removed, "only the owned cluster's stale file goes")
	_, err = os.Stat(filepath.Join(dir, "pg-other-primary.cfg"))
	assert.NoError(t, err, "another cluster's file stays")
}

func TestLineDiff(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           []string
	}{
		{"same", "a\nb\n", "a\nb\n", nil},
		{"new file", "", "a\nb\n", []string{"+a", "+b"}},
		{"one line changed", "a\nb\nc\n", "a\nB\nc\n", []string{"-b", "+B"}},
		{"line added at the end", "a\n", "a\nb\n", []string{"+b"}},
		{"line removed", "a\nb\nc\n", "a\nc\n", []string{"-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, LineDiff([]byte(tt.old), []byte(tt.new)))
		})
	}
}

// persistLab is a config dir with a main config real `haproxy -c` accepts.
func persistLab(t *testing.T, reloader Reloader) (*ConfigDir, *reconcile.Service) {
	t.Helper()
	dir := t.TempDir()
	global := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(global, []byte("global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"), 0o644))
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	s.IP, s.Port, s.Maxconn, s.Balance = "127.0.0.1", 15434, 100, "roundrobin"
	return &ConfigDir{Dir: dir, MainConfig: global, Reloader: reloader}, s
}

// Pins: `haproxy -c` checked only the changed files, so a hand-written file
// in the conf dir declaring the same proxy name passed, and the reload
// then failed. The check covers what a restart would load.
func TestPersistChecksTheWholeConfDir(t *testing.T) {
	c, s := persistLab(t, &CommandReloader{Argv: []string{"true"}})
	require.NoError(t, os.WriteFile(filepath.Join(c.Dir, "custom.cfg"), []byte("listen pg-test-replica\n    bind 127.0.0.1:15999\n"), 0o644))
	_, err := c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.ErrorContains(t, err, "haproxy -c rejected the config a restart would load")
	assert.ErrorContains(t, err, "pg-test-replica", "HAProxy's reason names the clash")
	_, statErr := os.Stat(filepath.Join(c.Dir, "pg-test-replica.cfg"))
	assert.True(t, os.IsNotExist(statErr), "nothing written")
}

// Pins: a same-named file without pgsvc's marker was overwritten.
func TestPersistNeverOverwritesAFileItDidNotWrite(t *testing.T) {
	c, s := persistLab(t, &CommandReloader{Argv: []string{"true"}})
	mine := "listen pg-test-replica\n    bind 127.0.0.1:15434\n    # hand-written\n"
	require.NoError(t, os.WriteFile(filepath.Join(c.Dir, "pg-test-replica.cfg"), []byte(mine), 0o644))
	_, err := c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(c.Dir, "pg-test-replica.cfg")+" exists and was not written by pgsvc")
	data, _ := os.ReadFile(filepath.Join(c.Dir, "pg-test-replica.cfg"))
	assert.Equal(t, mine, string(data), "untouched")
}

// Pins: a failed reload left the new files on disk, so a restart would
// load a config HAProxy does not run. They are put back, with the reason.
func TestPersistPutsFilesBackWhenTheReloadFails(t *testing.T) {
	c, s := persistLab(t, &CommandReloader{Argv: []string{"true"}})
	_, err := c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.NoError(t, err)
	before := map[string]string{}
	entries, _ := os.ReadDir(c.Dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(c.Dir, e.Name()))
		before[e.Name()] = string(data)
	}
	fp, _, err := c.Fingerprint()
	require.NoError(t, err)

	c.Reloader = &CommandReloader{Argv: []string{"sh", "-c", "echo master socket timeout >&2; exit 1"}}
	changed, added := *s, *s
	changed.Balance = "leastconn"
	added.Name, added.Port = "pg-test-extra", 15435
	_, err = c.Persist(context.Background(), []reconcile.Service{changed, added}, true, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the previous files were put back")
	after := map[string]string{}
	entries, _ = os.ReadDir(c.Dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(c.Dir, e.Name()))
		after[e.Name()] = string(data)
	}
	assert.Equal(t, before, after, "the changed file restored, the added one gone, the fingerprint as before")
	fp2, _, err := c.Fingerprint()
	require.NoError(t, err)
	assert.Equal(t, fp, fp2)
}

// Pins: a reload past Linux's limit for one environment string (HAProxy
// 2.6 exports every config path in HAPROXY_CFGFILES) made the master's
// re-exec fail and HAProxy exit, although `haproxy -c` passed. Such a
// reload is refused before it is sent, and the files are put back.
func TestReloadRefusedPastTheEnvironmentLimit(t *testing.T) {
	reloaded := false
	c, s := persistLab(t, reloaderFunc(func(context.Context) error { reloaded = true; return nil }))
	c.HAProxy = "true" // 3,000 files: the check itself is TestPersistRefusesWhatHAProxyRejects's
	long := strings.Repeat("x", 40)
	for i := 0; i < 3000; i++ {
		name := fmt.Sprintf("custom-%s-%04d.cfg", long, i)
		require.NoError(t, os.WriteFile(filepath.Join(c.Dir, name), []byte("# not pgsvc's\n"), 0o644))
	}
	_, err := c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reload refused: HAProxy would export 3003 config paths in HAPROXY_CFGFILES")
	assert.Contains(t, err.Error(), "the previous files were put back")
	assert.False(t, reloaded, "never sent")
	_, statErr := os.Stat(filepath.Join(c.Dir, "pg-test-replica.cfg"))
	assert.True(t, os.IsNotExist(statErr))
}

type reloaderFunc func(context.Context) error

func (f reloaderFunc) Reload(ctx context.Context) error { return f(ctx) }
func (f reloaderFunc) String() string                   { return "test" }

// Pins: in a service without health checks whose check URI says primary
// (v1 `check_port: none` keeps `check_url: /`), forcing sent `health down`
// to the servers that were not the leader, and nothing brought them back.
// HAProxy keeps unchecked servers in rotation whatever their role: there
// is nothing to force.
func TestPlanAccelLeavesUncheckedServersAlone(t *testing.T) {
	b := parsed(t)
	s := replica(reconcile.Active, reconcile.Active, reconcile.Active)
	s.Name, s.CheckURI = "pg-test-primary", "/"
	for i := range s.Servers {
		s.Servers[i].CheckPort = 0
	}
	for k, v := range b.Slots {
		v.Admin, v.UWeight, v.Status, v.Checked, v.CheckPort, v.Op = AdminReady, 100, "no check", false, 0, OpRunning
		if v.Backup {
			v.Admin, v.Status = AdminMaint, "MAINT"
		}
		b.Slots[k] = v
	}
	cmds, err := PlanService(s, b, reconcile.Accel{Down: []string{"pg-test-1", "pg-test-3"}, Up: "pg-test-2"})
	require.NoError(t, err)
	assert.Empty(t, lines(cmds))
}

// A server without checks that HAProxy shows stopped (a server-state file
// taken while it was checked and down, a health forced down by hand) is
// brought up: no check ever will.
func TestPlanUncheckedStoppedSlotComesUp(t *testing.T) {
	b := parsed(t)
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	for i := range s.Servers {
		s.Servers[i].CheckPort = 0
	}
	s.Servers[2].Weight = 40
	for k, v := range b.Slots {
		v.Checked = false
		b.Slots[k] = v
	}
	s3 := b.Slots["pg-test-3"]
	s3.Op, s3.Status = OpStopped, "DOWN"
	b.Slots["pg-test-3"] = s3
	s3b := b.Slots["pg-test-3.b"]
	s3b.UWeight = 40
	b.Slots["pg-test-3.b"] = s3b
	b.Slots["pg-test-2"] = SlotState{Name: "pg-test-2", Addr: "127.0.0.12", Port: 6432, CheckPort: 8008, UWeight: 100, Status: "no check", Op: OpRunning}
	cmds, err := PlanService(s, b, reconcile.Accel{})
	require.NoError(t, err)
	assert.Equal(t, []string{"set server pg-test-replica/pg-test-3 health up"}, lines(cmds))
}

// The saved state leaves out the address of servers configured by name:
// the new worker resolves the name again instead of keeping the old IP.
func TestStateWithoutNamedAddrs(t *testing.T) {
	dump := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n" +
		"5 b 1 s1 10.0.0.1 2 0 100 100 0 1 0 3 6 0 0 0 db1.example 6432 - 0 8008 - - 8008\n" +
		"5 b 2 s2 10.0.0.2 0 0 100 100 0 1 0 3 6 0 0 0 - 6432 - 0 8008 - - 8008\n"
	got := stateWithoutNamedAddrs(dump)
	assert.Equal(t, "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n"+
		"5 b 1 s1 - 2 0 100 100 0 1 0 3 6 0 0 0 db1.example 6432 - 0 8008 - - 8008\n"+
		"5 b 2 s2 10.0.0.2 0 0 100 100 0 1 0 3 6 0 0 0 - 6432 - 0 8008 - - 8008\n", got)
}
