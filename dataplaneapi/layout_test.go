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

func TestParseLayout(t *testing.T) {
	for in, want := range map[string]Layout{"": LayoutService, "service": LayoutService, "cluster": LayoutCluster} {
		got, err := ParseLayout(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseLayout("per-cluster")
	assert.EqualError(t, err, `file layout "per-cluster": want "service" (one file per service, as Pigsty) or "cluster" (one file per cluster)`)
}

// clusterServices is a cluster's replica and primary services (ports apart).
func clusterServices(cluster string, port int) []reconcile.Service {
	r := replica(reconcile.Backup, reconcile.Active, reconcile.Active)
	r.Cluster, r.Name = cluster, cluster+"-replica"
	r.IP, r.Port, r.Maxconn, r.Balance = "127.0.0.1", port, 100, "roundrobin"
	p := *r
	p.Name, p.Port, p.CheckURI = cluster+"-primary", port+1, "/primary"
	return []reconcile.Service{p, *r}
}

func TestLayoutUnits(t *testing.T) {
	services := append(clusterServices("pg-a", 15000), clusterServices("pg-b", 15002)...)
	tests := []struct {
		layout Layout
		want   map[string][]string
	}{
		{LayoutService, map[string][]string{"pg-a-primary.cfg": {"pg-a-primary"}, "pg-a-replica.cfg": {"pg-a-replica"},
			"pg-b-primary.cfg": {"pg-b-primary"}, "pg-b-replica.cfg": {"pg-b-replica"}}},
		{LayoutCluster, map[string][]string{"pg-a.cfg": {"pg-a-primary", "pg-a-replica"}, "pg-b.cfg": {"pg-b-primary", "pg-b-replica"}}},
	}
	for _, tt := range tests {
		units, err := tt.layout.units(services)
		require.NoError(t, err)
		got := map[string][]string{}
		for _, u := range units {
			for _, s := range u.services {
				got[u.name] = append(got[u.name], s.Name)
			}
			data, err := u.render()
			require.NoError(t, err)
			names, _ := sections(data)
			assert.Equal(t, got[u.name], names, "the file's sections are its services, in order")
			cluster, managed := ManagedCluster(data)
			assert.True(t, managed)
			assert.Equal(t, u.cluster, cluster)
		}
		assert.Equal(t, tt.want, got, tt.layout)
	}
}

// Two services of one name (cluster pg, service a-primary, and cluster
// pg-a, service primary) would share a file: refused, naming both.
func TestLayoutUnitsRefuseASharedFile(t *testing.T) {
	_, err := LayoutService.units([]reconcile.Service{{Name: "pg-a-primary", Cluster: "pg-a"}, {Name: "pg-a-primary", Cluster: "pg"}})
	assert.EqualError(t, err, "services pg-a-primary (cluster pg-a) and pg-a-primary (cluster pg) would share the file pg-a-primary.cfg: rename one, or use another file layout")
}

func TestFileReasons(t *testing.T) {
	render := func(services ...reconcile.Service) []byte {
		u := &unit{}
		for i := range services {
			u.services = append(u.services, &services[i])
		}
		data, err := u.render()
		require.NoError(t, err)
		return data
	}
	both := clusterServices("pg-a", 15000)
	weighted := clusterServices("pg-a", 15000)
	weighted[1].Servers[2].Weight = 40
	rebalanced := clusterServices("pg-a", 15000)
	rebalanced[0].Balance = "leastconn"
	tests := []struct {
		name     string
		old, new []byte
		had      bool
		want     []string
	}{
		{"new file", nil, render(both...), false, []string{"service pg-a-primary added", "service pg-a-replica added"}},
		{"same", render(both...), render(both...), true, nil},
		{"weight only", render(both...), render(weighted...), true, nil},
		{"service added", render(both[1]), render(both...), true, []string{"service pg-a-primary added"}},
		{"service removed", render(both...), render(both[0]), true, []string{"service pg-a-replica removed"}},
		{"balance", render(both...), render(rebalanced...), true, []string{"service pg-a-primary changed beyond runtime settings"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, fileReasons(tt.old, tt.new, tt.had), tt.name)
	}
	assert.Equal(t, []string{"service pg-a-primary removed", "service pg-a-replica removed"}, removedReasons("pg-a.cfg", render(both...)))
	assert.Equal(t, []string{"file x.cfg removed"}, removedReasons("x.cfg", []byte("# (managed by pgsvc\n")))
}

// The cluster layout through Persist and a real `haproxy -c`: a keyed
// pass rewrites the cluster's one file, a service dropped from it is a
// structural change, switching layouts replaces every file, and another
// cluster's file of the same name is never overwritten.
func TestPersistClusterLayout(t *testing.T) {
	c, _ := persistLab(t, reloaderFunc(func(context.Context) error { return nil }))
	c.Layout = LayoutCluster
	ctx := context.Background()
	a, b := clusterServices("pg-a", 15000), clusterServices("pg-b", 15002)
	res, err := c.Persist(ctx, append(append([]reconcile.Service{}, a...), b...), true, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-a.cfg", "pg-b.cfg", "pgsvc-fingerprint.cfg"}, res.Written)
	assert.Len(t, res.Reload, 4)

	a[1].Servers[2].Weight = 40
	res, err = c.Persist(ctx, a, false, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-a.cfg"}, res.Written, "a weight: one file, the fingerprint unchanged")
	assert.Empty(t, res.Reload)

	res, err = c.Persist(ctx, a[:1], false, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"service pg-a-replica removed"}, res.Reload)
	data, err := os.ReadFile(filepath.Join(c.Dir, "pg-a.cfg"))
	require.NoError(t, err)
	assert.NotContains(t, string(data), "listen pg-a-replica")

	c.Layout = LayoutService
	res, err = c.Persist(ctx, append(append([]reconcile.Service{}, a...), b...), true, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-a.cfg", "pg-b.cfg"}, res.Removed)
	assert.Contains(t, res.Written, "pg-b-replica.cfg")

	// Cluster pg-b-replica in the cluster layout would write pg-b-replica.cfg,
	// which holds cluster pg-b's service.
	c.Layout = LayoutCluster
	_, err = c.Persist(ctx, clusterServices("pg-b-replica", 15010), false, false)
	require.ErrorContains(t, err, "pg-b-replica.cfg holds cluster pg-b's services, not cluster pg-b-replica's: not overwritten")
}

// Pins: a keyed pass in the new layout left the old layout's files of its
// cluster in place, and `haproxy -c` then refused every pass (each service
// declared twice).
func TestKeyedPassRemovesTheOtherLayoutsFiles(t *testing.T) {
	c, _ := persistLab(t, reloaderFunc(func(context.Context) error { return nil }))
	ctx := context.Background()
	a, b := clusterServices("pg-a", 15000), clusterServices("pg-b", 15002)
	_, err := c.Persist(ctx, append(append([]reconcile.Service{}, a...), b...), true, false)
	require.NoError(t, err)
	c.Layout = LayoutCluster
	res, err := c.Persist(ctx, a, false, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-a-primary.cfg", "pg-a-replica.cfg"}, res.Removed)
	assert.Contains(t, res.Written, "pg-a.cfg")
	_, err = os.Stat(filepath.Join(c.Dir, "pg-b-primary.cfg"))
	assert.NoError(t, err, "another cluster's files wait for its own pass")

	c.Layout = LayoutService
	res, err = c.Persist(ctx, a, false, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"pg-a.cfg"}, res.Removed, "and back")
}

// Pins: a cluster named pgsvc-fingerprint-x had its file taken for a
// fingerprint file: rewritten and reloaded on every pass.
func TestLayoutRefusesReservedNames(t *testing.T) {
	for _, tt := range []struct {
		layout  Layout
		cluster string
		want    string
	}{
		{LayoutCluster, "pgsvc-fingerprint-x", "service pgsvc-fingerprint-x-primary of cluster pgsvc-fingerprint-x: file pgsvc-fingerprint-x.cfg would be taken for pgsvc's fingerprint file (pgsvc-fingerprint*.cfg): rename the cluster"},
		{LayoutService, "pgsvc-fingerprint", "service pgsvc-fingerprint-primary of cluster pgsvc-fingerprint: file pgsvc-fingerprint-primary.cfg would be taken for pgsvc's fingerprint file (pgsvc-fingerprint*.cfg): rename the cluster"},
		{LayoutCluster, "haproxy", "service haproxy-primary of cluster haproxy: file haproxy.cfg is HAProxy's main config: rename the cluster"},
		{LayoutCluster, "../pg", `service ../pg-primary of cluster ../pg: file name "../pg.cfg" is not a plain file name: rename the cluster or service`},
	} {
		_, err := tt.layout.units(clusterServices(tt.cluster, 15000))
		assert.EqualError(t, err, tt.want)
	}
}

// Pins: a keyed pass over cluster pg-test (first) and cluster pg's service
// test took pg's pg-test.cfg for pg-test's cluster-layout leftover: it was
// rewritten and reloaded on every pass, and deleted by a failed reload.
func TestKeyedPassKeepsAFileThatIsAnotherServicesOwn(t *testing.T) {
	c, _ := persistLab(t, reloaderFunc(func(context.Context) error { return nil }))
	ctx := context.Background()
	pgTest := clusterServices("pg-test", 15000)
	pg := clusterServices("pg", 15002)[:1]
	pg[0].Name = "pg-test" // cluster pg, service test: pg-test.cfg
	services := append(append([]reconcile.Service{}, pgTest...), pg...)
	_, err := c.Persist(ctx, services, true, false)
	require.NoError(t, err)
	res, err := c.Persist(ctx, services, false, false)
	require.NoError(t, err)
	assert.Empty(t, res.Written, "nothing changed")
	assert.Empty(t, res.Reload)
	assert.Empty(t, res.Removed)
}
