package dataplaneapi

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Pins: when `haproxy -c` (the real one) refused one cluster's new files,
// Persist failed whole, so every other cluster's change waited with it and
// no cluster was named. The clusters whose files HAProxy's reasons name
// are now refused alone (their files stay), the rest is checked again
// without them and applied; a reason naming no new managed file (a
// hand-written file) still fails the whole pass.
func TestPersistRejectsOnlyTheClustersHAProxyNames(t *testing.T) {
	unresolvable := func(ss []reconcile.Service) {
		for i := range ss {
			ss[i].Servers = append(ss[i].Servers, reconcile.Server{Name: "pg-x-4", Host: "pg-x.invalid", Port: 6432, CheckPort: 8008,
				Weight: 100, Slot: reconcile.Active, Member: 3})
		}
	}
	badBalance := func(ss []reconcile.Service) { ss[0].Balance = "no-such-algorithm" }
	tests := []struct {
		name        string
		layout      Layout
		broken      map[string]func([]reconcile.Service)
		handWritten string            // a custom.cfg added with the change
		want        map[string]string // rejected cluster -> HAProxy's reason
		whole       string            // the whole pass fails with this
	}{
		{"an unresolvable member", LayoutService, map[string]func([]reconcile.Service){"pg-a": unresolvable}, "",
			map[string]string{"pg-a": "could not resolve address 'pg-x.invalid'"}, ""},
		{"a parse error", LayoutService, map[string]func([]reconcile.Service){"pg-a": badBalance}, "",
			map[string]string{"pg-a": "balance only supports"}, ""},
		// HAProxy stops before resolving names when a file does not parse:
		// pg-b is only named by the second check.
		{"two clusters, one check each", LayoutService, map[string]func([]reconcile.Service){"pg-a": badBalance, "pg-b": unresolvable}, "",
			map[string]string{"pg-a": "balance only supports", "pg-b": "could not resolve address 'pg-x.invalid'"}, ""},
		{"one file per cluster", LayoutCluster, map[string]func([]reconcile.Service){"pg-a": unresolvable}, "",
			map[string]string{"pg-a": "could not resolve address 'pg-x.invalid'"}, ""},
		{"a hand-written file's error is nobody's cluster", LayoutService, nil, "listen custom\n    no-such-keyword\n",
			nil, "custom.cfg:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reloader := &countingReloader{Reloader: &CommandReloader{Argv: []string{"true"}}}
			c, _ := persistLab(t, reloader)
			c.Layout = tt.layout
			clusters := map[string][]reconcile.Service{"pg-a": clusterServices("pg-a", 15000), "pg-b": clusterServices("pg-b", 15002),
				"pg-test": clusterServices("pg-test", 15004)}
			all := func() []reconcile.Service {
				var out []reconcile.Service
				for _, name := range []string{"pg-a", "pg-b", "pg-test"} {
					out = append(out, clusters[name]...)
				}
				return out
			}
			ctx := context.Background()
			_, err := c.Persist(ctx, all(), true, false)
			require.NoError(t, err)
			before, err := ManagedFiles(c.Dir, nil)
			require.NoError(t, err)

			for name, breakIt := range tt.broken {
				clusters[name] = append([]reconcile.Service(nil), clusters[name]...)
				breakIt(clusters[name])
			}
			extra := clusters["pg-test"][1]
			extra.Name, extra.Port = "pg-test-extra", 15006
			clusters["pg-test"] = append(clusters["pg-test"], extra)
			if tt.handWritten != "" {
				require.NoError(t, os.WriteFile(filepath.Join(c.Dir, "custom.cfg"), []byte(tt.handWritten), 0o644))
			}
			res, err := c.Persist(ctx, all(), true, false)
			after, rerr := ManagedFiles(c.Dir, nil)
			require.NoError(t, rerr)
			require.Error(t, err)
			t.Logf("%v", err)

			if tt.whole != "" {
				assert.ErrorContains(t, err, "nothing written: haproxy -c rejected the config a restart would load")
				assert.ErrorContains(t, err, tt.whole, "HAProxy's reason")
				assert.Empty(t, res.Rejected, "no cluster is blamed")
				assert.Equal(t, before, after, "nothing written")
				assert.Equal(t, int32(1), reloader.calls.Load(), "no reload")
				return
			}
			var rejected reconcile.ClusterErrors
			require.ErrorAs(t, err, &rejected, "a per-cluster error, not a failed pass")
			require.Len(t, rejected, len(tt.want))
			for name, reason := range tt.want {
				require.Contains(t, rejected, name)
				msg := rejected[name].Error()
				assert.Contains(t, msg, "haproxy -c rejected the config a restart would load")
				assert.Contains(t, msg, reason, "HAProxy's reason")
				assert.Contains(t, msg, filepath.Join(c.Dir, name), "the cluster's file in the conf dir, not the staging copy")
				for file, data := range before {
					if owner, _ := ManagedCluster(data); owner == name {
						assert.Equal(t, string(data), string(after[file]), "%s: the rejected cluster's file is as it was", file)
					}
				}
			}
			assert.Equal(t, []string{"service pg-test-extra added"}, res.Reload, "the good cluster's change alone")
			assert.Contains(t, res.Written, c.Layout.fileOf(&extra))
			assert.Contains(t, after, c.Layout.fileOf(&extra), "written")
			assert.Equal(t, int32(2), reloader.calls.Load(), "and reloaded")
			require.NoError(t, c.check(ctx, nil, nil), "what is on disk passes haproxy -c")
		})
	}
}
