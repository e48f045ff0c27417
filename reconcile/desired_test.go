package reconcile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/selector"
)

func loadFixture(t testing.TB, name string) *selector.Model {
	t.Helper()
	m, err := selector.Load("../fixtures/inventory/" + name)
	require.NoError(t, err)
	return m
}

// members lists a service's servers as "name:port" with "(b)" for backups,
// in order, leaving out members that are out of the service.
func members(t testing.TB, d Desired, service string) string {
	t.Helper()
	s, ok := d.Service(service)
	require.True(t, ok, "service %s", service)
	var out []string
	for _, sv := range s.Servers {
		switch sv.Slot {
		case Active:
			out = append(out, fmt.Sprintf("%s:%d", sv.Name, sv.Port))
		case Backup:
			out = append(out, fmt.Sprintf("%s:%d(b)", sv.Name, sv.Port))
		}
	}
	return strings.Join(out, " ")
}

func compute(t testing.TB, m *selector.Model, live Live, names ...string) Desired {
	t.Helper()
	clusters, err := m.Select("", names)
	require.NoError(t, err)
	d, err := Compute(clusters, live, false)
	require.NoError(t, err)
	return d
}

// The expected servers are Pigsty's rendering of its sandbox, as its docs
// (docs/PGSQL-SVC.md) and research/pigsty.md §1.8 show them.
func TestSandboxMatchesPigsty(t *testing.T) {
	d := compute(t, loadFixture(t, "sandbox.yml"), Live{})
	tests := []struct{ service, want string }{
		{"pg-test-primary", "pg-test-1:6432 pg-test-2:6432 pg-test-3:6432"},
		{"pg-test-replica", "pg-test-1:6432(b) pg-test-2:6432 pg-test-3:6432"},
		{"pg-test-default", "pg-test-1:5432 pg-test-2:5432 pg-test-3:5432"},
		{"pg-test-offline", "pg-test-3:5432 pg-test-2:5432(b)"},
		{"pg-meta-primary", "pg-meta-1:6432"},
		{"pg-meta-replica", "pg-meta-1:6432(b)"},
		{"pg-meta-offline", ""}, // single node, no pg_offline_query: no servers at all
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, members(t, d, tc.service), tc.service)
	}
	primary, _ := d.Service("pg-test-primary")
	assert.Equal(t, "*:5433", primary.Bind())
	assert.Equal(t, "/primary", primary.CheckURI)
	assert.Equal(t, 5000, primary.Maxconn)
	assert.Equal(t, "roundrobin", primary.Balance)
	assert.Equal(t, selector.SeedServerOptions, primary.Options)
	assert.True(t, primary.ChecksPrimary())
	offline, _ := d.Service("pg-test-offline")
	assert.Equal(t, "/replica", offline.CheckURI)
	assert.False(t, offline.ChecksPrimary())
	// Members out of a service keep a (disabled) place for live changes.
	assert.Len(t, offline.Servers, 3)
}

func TestStandbyServiceAndRTOPlan(t *testing.T) {
	d := compute(t, loadFixture(t, "standby.yml"), Live{})
	assert.Equal(t, "pg-meta-1:6432(b)", members(t, d, "pg-meta-standby"))
	assert.Equal(t, "pg-meta-1:5432", members(t, d, "pg-meta-offline"), "pg_offline_query on the primary puts it in offline")
	standby, _ := d.Service("pg-meta-standby")
	assert.Equal(t, "/sync", standby.CheckURI)
	assert.Equal(t, 3000, standby.Maxconn)
	assert.Equal(t, "inter 2s fastinter 1s downinter 2s rise 3 fall 3 on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100", standby.Options, "pg_rto norm")
	primary, _ := d.Service("pg-test-primary")
	assert.Equal(t, "inter 1s fastinter 0.5s downinter 1s rise 3 fall 3 on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100", primary.Options, "cluster pg_rto fast overrides global norm")
	assert.Equal(t, "pg-test-3:5432 pg-test-2:5432(b)", members(t, d, "pg-test-offline"), "explicit pg_offline_query: false behaves as unset")
}

func TestV1Schema(t *testing.T) {
	d := compute(t, loadFixture(t, "v1.yml"), Live{})
	assert.Equal(t, "pg-test-1:6432(b) pg-test-2:6432 pg-test-3:6432(b)", members(t, d, "pg-test-replica"))
	assert.Equal(t, "pg-test-3:5432 pg-test-2:5432(b)", members(t, d, "pg-test-offline"), "role offline is selected, the replica backs it up")
	assert.Equal(t, "pg-test-1:6432(b) pg-test-2:6432 pg-test-3:6432", members(t, d, "pg-test-standby"))
	primary, _ := d.Service("pg-test-primary")
	assert.Equal(t, "10.10.10.3:5433", primary.Bind(), "src_ip: vip binds the cluster's vip_address")
	assert.Equal(t, 3000, primary.Maxconn, "v1 maxconn default")
	metrics, _ := d.Service("pg-test-metrics")
	assert.False(t, metrics.HTTPCheck, "check_method tcp renders no http-check")
	assert.Equal(t, 9630, metrics.Servers[0].CheckPort, "check_port pg_exporter")
	assert.Equal(t, 9630, metrics.Servers[0].Port, "numeric dst_port")
}

func TestDestVariants(t *testing.T) {
	d := compute(t, loadFixture(t, "dest.yml"), Live{})
	assert.Equal(t, "pg-dest-1:5442 pg-dest-2:5432 pg-dest-3:5432 pg-dest-4:5432", members(t, d, "pg-dest-primary"), "default -> pg_default_service_dest postgres, per-host pg_port")
	assert.Equal(t, "pg-dest-2:6432 pg-dest-3:6432 pg-dest-4:6432 pg-dest-1:6442(b)", members(t, d, "pg-dest-bouncer"), "backup-only primary comes last")
	assert.Equal(t, "pg-dest-3:6543 pg-dest-4:6543", members(t, d, "pg-dest-fixed"))
	assert.Equal(t, "pg-dest-3:7000 pg-dest-4:7000", members(t, d, "pg-dest-quoted"), "a quoted number is a port")
	primary, _ := d.Service("pg-dest-primary")
	s1, _ := primary.Server("pg-dest-1")
	assert.Equal(t, Server{Name: "pg-dest-1", Host: "10.10.20.11", Port: 5442, CheckPort: 8018, CheckSSL: true, Weight: 50, Slot: Active, Role: "primary"}, s1)
	s2, _ := primary.Server("pg-dest-2")
	assert.Equal(t, 0, s2.Weight, "pg_weight 0 is kept, not defaulted")
	fixed, _ := d.Service("pg-dest-fixed")
	assert.Equal(t, "127.0.0.1:5440", fixed.Bind())
}

func TestProviderScope(t *testing.T) {
	m := loadFixture(t, "proxy.yml")
	names := func(node string) []string {
		cs, err := m.Select(node, nil)
		require.NoError(t, err)
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	assert.Equal(t, []string{"pg-v13", "pg-v14"}, names("10.10.10.29"), "proxy node carries every cluster that names its group")
	assert.Empty(t, names("10.10.10.14"), "a member of a provided cluster carries nothing")
	assert.Equal(t, []string{"pg-local"}, names("10.10.10.16"), "a provider group that does not exist means local services")
	assert.Equal(t, []string{"pg-local", "pg-v13", "pg-v14"}, names(""))
	cs, err := m.Select("10.10.10.29", []string{"pg-v14"})
	require.NoError(t, err)
	require.Len(t, cs, 1)
	assert.Equal(t, "pg-v14", cs[0].Name)
}

func TestSameNodeBindConflict(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	cs, err := m.Select("", nil)
	require.NoError(t, err)
	_, err = Compute(cs, Live{}, true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pg-meta-default (*:5436) and pg-test-default (*:5436) bind the same port")
}

func TestOverlayFollowsLeader(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	live := Live{Clusters: map[string]selector.ClusterLive{"pg-test": {
		Leader: "pg-test-2",
		Members: map[string]selector.Member{
			"pg-test-1": {Role: "replica", State: "running"},
			"pg-test-2": {Role: "master", State: "running"},
		},
	}}}
	d := compute(t, m, live, "pg-test")
	assert.Equal(t, "pg-test-1:6432 pg-test-2:6432(b) pg-test-3:6432", members(t, d, "pg-test-replica"), "new primary is the backup, old primary an active replica")
	assert.Equal(t, "pg-test-3:5432 pg-test-1:5432(b)", members(t, d, "pg-test-offline"), "old primary, now a replica, backs up offline")
	replica, _ := d.Service("pg-test-replica")
	s2, _ := replica.Server("pg-test-2")
	assert.Equal(t, "primary", s2.Role)
}

func TestOverlayKeepsStaticRolesWithoutLeader(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	static := compute(t, m, Live{}, "pg-test")
	live := Live{Clusters: map[string]selector.ClusterLive{"pg-test": {
		Members: map[string]selector.Member{"pg-test-1": {Role: "master", State: "stopped"}},
	}}}
	assert.True(t, Diff(static, compute(t, m, live, "pg-test")).Empty(), "no leader known: nothing moves")
	unknown := Live{Clusters: map[string]selector.ClusterLive{"pg-test": {Leader: "pg-test-9"}}}
	assert.True(t, Diff(static, compute(t, m, unknown, "pg-test")).Empty(), "a leader that is not an inventory instance moves nothing")
}

func TestOverridesApplyLast(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	live := Live{Overrides: selector.Overrides{
		"pg-test-3": {"pg_offline_query": false},
		"pg-test-2": {"pg_offline_query": true, "pg_weight": 20.0},
	}}
	d := compute(t, m, live, "pg-test")
	assert.Equal(t, "pg-test-2:5432 pg-test-3:5432(b)", members(t, d, "pg-test-offline"))
	primary, _ := d.Service("pg-test-primary")
	s2, _ := primary.Server("pg-test-2")
	assert.Equal(t, 20, s2.Weight)
}

func TestDiff(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	static := compute(t, m, Live{}, "pg-test")
	assert.True(t, Diff(static, static).Empty(), "a converged state plans nothing")

	live := Live{
		Clusters: map[string]selector.ClusterLive{"pg-test": {Leader: "pg-test-2"}},
		Overrides: selector.Overrides{
			"pg-test-3": {"pg_weight": 50.0},
		},
	}
	p := Diff(static, compute(t, m, live, "pg-test"))
	var got []string
	for _, c := range p.Changes {
		got = append(got, c.String())
	}
	assert.Equal(t, []string{
		"pg-test-default pg-test-3: server-weight 100 -> 50",
		"pg-test-offline pg-test-1: server-added backup",
		"pg-test-offline pg-test-3: server-weight 100 -> 50",
		"pg-test-offline pg-test-2: server-removed (was backup)",
		"pg-test-primary pg-test-3: server-weight 100 -> 50",
		"pg-test-replica pg-test-1: server-active backup -> active",
		"pg-test-replica pg-test-3: server-weight 100 -> 50",
		"pg-test-replica pg-test-2: server-backup active -> backup",
	}, got)
	assert.Empty(t, p.ReloadReasons(), "role, weight and membership changes are live")
}

func TestDiffStructural(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	a := compute(t, m, Live{}, "pg-test")
	b := compute(t, m, Live{}, "pg-test")
	b.Services[0].Maxconn = 10
	b.Services = b.Services[:3]
	b.Services[1].Servers = b.Services[1].Servers[:2]
	p := Diff(a, b)
	assert.Equal(t, []string{
		"pg-test-default: service-changed (was maxconn)",
		"pg-test-offline pg-test-1: member-removed (was out)",
		"pg-test-replica: service-removed (was *:5434)",
	}, p.ReloadReasons())
}

// TestDeclarationOrder: slots stay in inventory order unless the order
// decides traffic (the first usable backup, `balance first`) and Pigsty's
// order differs.
func TestDeclarationOrder(t *testing.T) {
	inv := func(svc string) *selector.Model {
		inv, err := selector.ParseInventory("inv.yml", []byte(`all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary }
        10.0.0.2: { pg_seq: 2, pg_role: replica }
        10.0.0.3: { pg_seq: 3, pg_role: replica }
      vars:
        pg_cluster: pg-test
        pg_default_services: []
        pg_services: [ `+svc+` ]
`))
		require.NoError(t, err)
		m, err := selector.NewModel(inv)
		require.NoError(t, err)
		return m
	}
	tests := []struct {
		name, service, want string
	}{
		{"default replica service keeps inventory order",
			"{ name: r, port: 5434, selector: '[]', backup: '[? pg_role == `primary`]' }", "pg-test-1 pg-test-2 pg-test-3"},
		{"backups in reversed order follow Pigsty",
			"{ name: r, port: 5434, selector: '[? pg_seq == `3`]', backup: 'reverse(@)' }", "pg-test-3 pg-test-2 pg-test-1"},
		{"actives reversed under roundrobin keep inventory order",
			"{ name: r, port: 5434, selector: 'reverse(@)' }", "pg-test-1 pg-test-2 pg-test-3"},
		{"actives reversed under balance first follow Pigsty",
			"{ name: r, port: 5434, selector: 'reverse(@)', balance: first }", "pg-test-3 pg-test-2 pg-test-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := compute(t, inv(tt.service), Live{})
			s, ok := d.Service("pg-test-r")
			require.True(t, ok)
			var names []string
			for _, sv := range s.DeclarationOrder() {
				names = append(names, sv.Name)
			}
			assert.Equal(t, tt.want, strings.Join(names, " "))
		})
	}
}

// pgsvc_drain (`pgsvc drain`) takes an instance out of every service
// whatever its selectors pick, as Ansible reads the value.
func TestDrainedInstanceIsOutEverywhere(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	for _, tc := range []struct {
		value   any
		out     bool
		offline string
	}{
		{true, true, "pg-test-2:5432(b)"},
		{"yes", true, "pg-test-2:5432(b)"},
		{false, false, "pg-test-3:5432 pg-test-2:5432(b)"},
		{"no", false, "pg-test-3:5432 pg-test-2:5432(b)"},
	} {
		t.Run(fmt.Sprint(tc.value), func(t *testing.T) {
			d := compute(t, m, Live{Overrides: selector.Overrides{"pg-test-3": {DrainVar: tc.value}}}, "pg-test")
			assert.Equal(t, tc.offline, members(t, d, "pg-test-offline"))
			for _, svc := range d.Services {
				sv, ok := svc.Server("pg-test-3")
				require.True(t, ok, svc.Name)
				assert.Equal(t, tc.out, sv.Drained, svc.Name)
				if tc.out {
					assert.Equal(t, Out, sv.Slot, "%s: out of the service", svc.Name)
				}
			}
		})
	}
}

// A drained instance that becomes the primary stays in the services that
// admit only the primary (they would have no server), marked kept, and
// leaves the rest; drained with --force ("always") it leaves them too.
func TestDrainedPrimaryStaysInPrimaryServices(t *testing.T) {
	m := loadFixture(t, "sandbox.yml")
	for _, value := range []any{true, DrainAlways} {
		t.Run(fmt.Sprint(value), func(t *testing.T) {
			live := Live{Overrides: selector.Overrides{"pg-test-2": {DrainVar: value}},
				Clusters: map[string]selector.ClusterLive{"pg-test": {Leader: "pg-test-2"}}}
			d := compute(t, m, live, "pg-test")
			force := value == DrainAlways
			for _, svc := range d.Services {
				sv, ok := svc.Server("pg-test-2")
				require.True(t, ok, svc.Name)
				assert.Equal(t, force || !svc.ChecksPrimary(), sv.Drained, "%s: out", svc.Name)
				assert.Equal(t, !force && svc.ChecksPrimary(), sv.DrainKept, "%s: kept", svc.Name)
			}
			assert.Equal(t, !force, strings.Contains(members(t, d, "pg-test-primary"), "pg-test-2:6432"))
		})
	}
}
