package dataplaneapi

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
)

// Which global/defaults file is checked with the service files when none is
// set: Pigsty before v4.5 keeps haproxy.cfg in the conf dir (/etc/haproxy),
// Pigsty v4.5 and Debian beside it (/etc/haproxy/haproxy.cfg with
// /etc/haproxy/conf.d).
func TestMainConfigDefault(t *testing.T) {
	for _, tc := range []struct {
		name         string
		set          string   // MainConfig
		files        []string // under the root; the conf dir is root/conf.d
		want         string   // relative to the root ("": none)
		dirIsMissing bool
	}{
		{name: "set wins", set: "other.cfg", files: []string{"haproxy.cfg", "conf.d/haproxy.cfg", "other.cfg"}, want: "other.cfg"},
		{name: "in the conf dir", files: []string{"haproxy.cfg", "conf.d/haproxy.cfg"}, want: "conf.d/haproxy.cfg"},
		{name: "beside the conf dir (Pigsty v4.5)", files: []string{"haproxy.cfg"}, want: "haproxy.cfg"},
		{name: "none", files: nil, want: ""},
		{name: "a directory named haproxy.cfg is not a config", files: []string{"haproxy.cfg/"}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(root, "conf.d"), 0o700))
			for _, f := range tc.files {
				p := filepath.Join(root, f)
				if f[len(f)-1] == '/' {
					require.NoError(t, os.Mkdir(p, 0o700))
					continue
				}
				require.NoError(t, os.WriteFile(p, []byte("global\n"), 0o644))
			}
			c := &ConfigDir{Dir: filepath.Join(root, "conf.d") + "/"}
			if tc.set != "" {
				c.MainConfig = filepath.Join(root, tc.set)
			}
			want := ""
			if tc.want != "" {
				want = filepath.Join(root, tc.want)
			}
			assert.Equal(t, want, c.MainConfigFile())
		})
	}
}

// Pins: with no --haproxy-config, haproxy.cfg beside /etc/haproxy/conf.d
// (Pigsty v4.5's layout) was not part of `haproxy -c`, so a clash with a
// proxy it declares passed the check and failed the reload.
func TestPersistChecksTheMainConfigBesideTheConfDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "conf.d")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(root, "haproxy.cfg"), []byte("global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nlisten pg-test-replica\n    bind 127.0.0.1:15999\n"), 0o644))
	s := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	s.IP, s.Port, s.Maxconn, s.Balance = "127.0.0.1", 15434, 100, "roundrobin"
	c := &ConfigDir{Dir: dir, Reloader: &CommandReloader{Argv: []string{"true"}}}
	_, err := c.Persist(context.Background(), []reconcile.Service{*s}, true, false)
	require.ErrorContains(t, err, "haproxy -c rejected the config a restart would load")
	assert.ErrorContains(t, err, "pg-test-replica", "HAProxy's reason names the clash")
	_, statErr := os.Stat(filepath.Join(dir, "pg-test-replica.cfg"))
	assert.True(t, os.IsNotExist(statErr), "nothing written")
}

const reloadTimeout = 10 * time.Second

// With no --haproxy-reload, reloads go to Pigsty v4.5's master socket when,
// at start-up, it is the master of the HAProxy on the stats socket; else
// there are none, and the reason says what to set. "none" turns reloads off.
func TestDetectMasterReloader(t *testing.T) {
	for _, spec := range []string{"", "none"} {
		r, err := ParseReloader(spec)
		require.NoError(t, err)
		assert.Nil(t, r, "%q: no reload unless detected", spec)
	}
	ctx := context.Background()
	hap := local.NewHAProxy(t)
	hap.Start()
	other := local.NewHAProxy(t) // a second HAProxy on the same host
	other.Start()
	rt, err := NewRuntime(ctx, hap.StatsSocket)
	require.NoError(t, err)

	r, why := DetectMasterReloader(ctx, hap.MasterSocket, rt)
	require.NotNil(t, r, why)
	assert.Contains(t, why, "the master of the HAProxy on "+hap.StatsSocket)
	before, err := ReadMaster(ctx, hap.MasterSocket)
	require.NoError(t, err)
	require.NoError(t, r.Reload(ctx), "the detected master reloads")
	after, err := ReadMaster(ctx, hap.MasterSocket)
	require.NoError(t, err)
	assert.Equal(t, before.Reloads+1, after.Reloads, "show proc counts the reload")

	// Asked again until its context ends: a master that just started may
	// not list its worker yet.
	otherCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, why = DetectMasterReloader(otherCtx, other.MasterSocket, rt)
	assert.Nil(t, r, "another HAProxy's master is never reloaded for this one")
	assert.Contains(t, why, "another HAProxy")
	assert.Contains(t, why, "haproxy_reload")

	missing := filepath.Join(hap.Dir, "no-master.sock")
	r, why = DetectMasterReloader(ctx, missing, rt)
	assert.Nil(t, r)
	assert.Contains(t, why, "no master socket at "+missing)
	assert.Contains(t, why, "structural changes are written, not loaded")
}

// A master CLI that is not there when pgsvc starts (HAProxy still
// starting, restarted, or started after pgsvc) is looked for again at the
// first reload a structural change needs: detection at start-up only left
// structural changes unloaded for good (seen in the trixie lab after a
// pgsvc restart).
func TestReloaderDetectedWhenNeeded(t *testing.T) {
	ctx := context.Background()
	hap := local.NewHAProxy(t)
	s := replica(reconcile.Active, reconcile.Active, reconcile.Active)
	s.Name, s.IP, s.Port = "pg-test-replica", "127.0.0.1", local.FreePort(t, "127.0.0.1")
	for i := range s.Servers {
		s.Servers[i].Host, s.Servers[i].Port, s.Servers[i].CheckPort = "127.0.0.1", local.FreePort(t, "127.0.0.1"), local.FreePort(t, "127.0.0.1")
	}
	files, err := Files(&reconcile.Desired{Services: []reconcile.Service{*s}}, LayoutService)
	require.NoError(t, err)
	_, err = WriteFiles(hap.ConfDir, files)
	require.NoError(t, err)
	require.NoError(t, WriteFingerprint(hap.ConfDir, nil, ""))
	hap.Start()
	rt, err := NewRuntime(ctx, hap.StatsSocket)
	require.NoError(t, err)

	// pgsvc looks at this path; the master is not there yet.
	master := filepath.Join(hap.Dir, "later-master.sock")
	startCtx, cancel := context.WithTimeout(ctx, time.Second)
	r, why := DetectMasterReloader(startCtx, master, rt)
	cancel()
	require.Nil(t, r, why)
	sy := &Syncer{Runtime: rt, Config: &ConfigDir{Dir: hap.ConfDir, MainConfig: hap.GlobalConfig,
		DetectReload: func(ctx context.Context) (Reloader, string) { return DetectMasterReloader(ctx, master, rt) }}}

	added := *s
	added.Name, added.Port = "pg-test-extra", local.FreePort(t, "127.0.0.1")
	_, err = sy.Apply(ctx, []reconcile.Service{*s, added}, nil, nil, false)
	require.Error(t, err, "no master yet: the files are written, not loaded")
	assert.Contains(t, err.Error(), "no reload is configured: no haproxy_reload set and no master socket at "+master)

	require.NoError(t, os.Symlink(hap.MasterSocket, master), "the master appears")
	before, err := ReadMaster(ctx, hap.MasterSocket)
	require.NoError(t, err)
	rep, err := sy.Apply(ctx, []reconcile.Service{*s, added}, nil, nil, false)
	require.NoError(t, err, "the next pass finds the master and reloads")
	assert.True(t, rep.Reloaded)
	after, err := ReadMaster(ctx, hap.MasterSocket)
	require.NoError(t, err)
	assert.Equal(t, before.Reloads+1, after.Reloads)
	_, err = rt.Backend(ctx, added.Name)
	require.NoError(t, err, "HAProxy runs the added service")
}

// A reload whose new configuration does not start: the error says why.
// HAProxy 3.x's master answers `reload` with Success=0 and the new
// process's alerts; 2.6 answers nothing, and only show proc's failed count
// tells.
func TestMasterReloadFailureSaysWhy(t *testing.T) {
	hap := local.NewHAProxy(t)
	hap.Start()
	require.NoError(t, os.WriteFile(filepath.Join(hap.ConfDir, "broken.cfg"), []byte("listen broken\n    bind 127.0.0.1:1 no-such-keyword\n"), 0o644))
	r := &MasterReloader{Socket: hap.MasterSocket, Timeout: reloadTimeout}
	err := r.Reload(context.Background())
	require.Error(t, err)
	assert.ErrorContains(t, err, "reload failed")
	if hap.Version.AtLeast(3, 0) {
		assert.ErrorContains(t, err, "broken.cfg:2", "HAProxy's own alert names file and line")
		assert.ErrorContains(t, err, "no-such-keyword")
		assert.NotContains(t, err.Error(), "[NOTICE]", "only the alerts")
	} else {
		assert.ErrorContains(t, err, "show proc: failed 1")
	}
	require.NoError(t, os.Remove(filepath.Join(hap.ConfDir, "broken.cfg")))
	require.NoError(t, r.Reload(context.Background()), "the master survived the failed reload")
}

// The master CLI's reply to `reload`, as HAProxy 3.0.11 printed it.
func TestReloadFailed(t *testing.T) {
	for _, tc := range []struct {
		name, reply, why string
		failed           bool
	}{
		{"2.6 answers nothing", "", "", false},
		{"3.0 success", "Success=1\n--\n[NOTICE]   (23) : New worker (207) forked\n[NOTICE]   (23) : Loading success.\n\n", "", false},
		{"3.0 failure", "Success=0\n--\n[NOTICE]   (23) : haproxy version is 3.0.11-1+deb13u5\n[ALERT]    (23) : config : parsing [/etc/haproxy/conf.d/zz.cfg:2] : 'bind :1' in section 'listen': unknown keyword 'badword'.\n[ALERT]    (23) : config : Fatal errors found in configuration.\n[WARNING]  (23) : Loading failure!\n",
			"[ALERT] (23) : config : parsing [/etc/haproxy/conf.d/zz.cfg:2] : 'bind :1' in section 'listen': unknown keyword 'badword'. | [ALERT] (23) : config : Fatal errors found in configuration.", true},
		{"3.0 failure without alerts", "Success=0\n--\n[WARNING]  (23) : Loading failure!\n", "[WARNING] (23) : Loading failure!", true},
		{"3.0 failure, no logs", "Success=0\n", "HAProxy gave no reason", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed, why := reloadFailed(tc.reply)
			assert.Equal(t, tc.failed, failed)
			assert.Equal(t, tc.why, why)
		})
	}
}
