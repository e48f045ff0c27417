package selector

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVariablePrecedence(t *testing.T) {
	inv, err := ParseInventory("inv.yml", []byte(`all:
  vars: { a: all, b: all, c: all, d: all, pg_weight: 100 }
  children:
    infra:
      hosts: { 10.0.0.1: { infra_seq: 1, d: host-in-infra } }
      vars: { b: infra, z: infra }
    pg-meta:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars: { pg_cluster: pg-meta, b: pg-meta, c: pg-meta }
      children:
        pg-meta-sub:
          hosts: { 10.0.0.2: { pg_seq: 2, pg_role: replica, c: host } }
          vars: { pg_cluster: pg-meta, b: sub }
`))
	require.NoError(t, err)
	h1, ok := inv.Host("10.0.0.1")
	require.True(t, ok)
	assert.Equal(t, []string{"infra", "pg-meta"}, h1.Groups)
	assert.Equal(t, "all", h1.Vars["a"])
	assert.Equal(t, "pg-meta", h1.Vars["b"], "same depth: groups merge by name, pg-meta after infra")
	assert.Equal(t, "host-in-infra", h1.Vars["d"], "host vars from every group the host is listed in")
	assert.Equal(t, int64(1), h1.Vars["pg_seq"])
	assert.Equal(t, int64(1), h1.Vars["infra_seq"])
	assert.Equal(t, "10.0.0.1", h1.Vars["inventory_hostname"])
	assert.NotContains(t, h1.Vars, "pg_offline_query", "unset variables stay absent, as in Pigsty")
	h2, _ := inv.Host("10.0.0.2")
	assert.Equal(t, []string{"pg-meta", "pg-meta-sub"}, h2.Groups, "a child group's hosts belong to the parent")
	assert.Equal(t, "sub", h2.Vars["b"], "deeper group wins")
	assert.Equal(t, "host", h2.Vars["c"])
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, []string{inv.Hosts[0].Name, inv.Hosts[1].Name})
}

func records(hosts ...Record) []Record { return hosts }

func host(name string, seq int, role string, extra ...any) Record {
	r := Record{"inventory_hostname": name, "pg_seq": int64(seq), "pg_role": role, "pg_cluster": "c"}
	for i := 0; i+1 < len(extra); i += 2 {
		r[extra[i].(string)] = extra[i+1]
	}
	return r
}

func TestEvaluateOrder(t *testing.T) {
	exprs := &exprCache{byText: map[string]*Expr{}}
	compile := func(src string) *Expr {
		e, err := exprs.compile(src, "test")
		require.NoError(t, err)
		return e
	}
	members := records(host("a", 1, "primary"), host("b", 2, "replica"), host("c", 3, "offline"), host("d", 4, "replica", "pg_offline_query", true))
	names := func(picks []Pick) []string {
		var out []string
		for _, p := range picks {
			n := p.Record["inventory_hostname"].(string)
			if p.Backup {
				n += "(b)"
			}
			out = append(out, n)
		}
		return out
	}
	tests := []struct {
		selector, backup string
		want             []string
	}{
		{"[]", "", []string{"a", "b", "c", "d"}},
		{"[]", "[? pg_role == `primary` || pg_role == `offline` ]", []string{"a(b)", "b", "c(b)", "d"}},
		{"[? pg_role == `offline` || pg_offline_query ]", "[? pg_role == `replica` && !pg_offline_query]", []string{"c", "d", "b(b)"}},
		{"reverse(@)", "", []string{"d", "c", "b", "a"}},
		{"[? pg_seq > `2`] | reverse(@)", "[? pg_role == `primary`] ", []string{"d", "c", "a(b)"}},
		{"[? pg_role == `standby`]", "", nil},
		{"[? pg_role == `standby`] | [0]", "", nil}, // null result: no servers, as |default([])
		{"[a, a][]", "", nil},                    // fields that do not exist select nothing
		{"[] | [@[0], @[0]]", "", []string{"a"}}, // a host listed twice appears once
		// sort_by in the selector must not reorder what backup sees: both
		// run over the inventory's member order, as in Pigsty.
		{"sort_by(@, &to_string(!pg_offline_query))", "[? pg_role == `replica`] | [:1]", []string{"d", "a", "b(b)", "c"}},
		// A function after a null in a chain still runs, as in Python:
		// type(null) is "null", a true string, so every host is selected.
		{"[? missing.type(@) ]", "", []string{"a", "b", "c", "d"}},
		{"[? pg_offline_query.not_null(@, 'unset') ]", "", []string{"a", "b", "c", "d"}},
	}
	for _, tc := range tests {
		s := &Service{Cluster: "c", Name: "s", Selector: compile(tc.selector)}
		if tc.backup != "" {
			s.Backup = compile(tc.backup)
		}
		picks, err := s.Evaluate(members)
		require.NoError(t, err, tc.selector)
		assert.Equal(t, tc.want, names(picks), "%s / %s", tc.selector, tc.backup)
	}
}

// TestInstanceNames: the instance name is <pg_cluster>-<pg_seq> as Pigsty
// prints it, which is also Patroni's member name. pg_seq: 1.0 named
// pg-test-1 (whole floats were read as integers) where Pigsty and Patroni
// name it pg-test-1.0, so its live role never matched.
func TestInstanceNames(t *testing.T) {
	tests := []struct{ seq, want string }{
		{"1", "pg-test-1"},
		{`"1"`, "pg-test-1"},
		{"08", "pg-test-08"}, // a string to YAML 1.1
		{"010", "pg-test-8"}, // octal
		{"0x0A", "pg-test-10"},
		{"1:30", "pg-test-90"}, // sexagesimal
		{"1.0", "pg-test-1.0"},
		{"2.5e+1", "pg-test-25.0"},
	}
	for _, tt := range tests {
		t.Run(tt.seq, func(t *testing.T) {
			m, err := parseModel(t, seqInventory(tt.seq))
			require.NoError(t, err)
			h := m.Clusters[0].Members[1]
			assert.Equal(t, tt.want, InstanceName("pg-test", Seq(h.Vars)))
		})
	}
}

func seqInventory(seq string) string {
	return `all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 3, pg_role: primary }
        10.0.0.2: { pg_seq: ` + seq + `, pg_role: replica }
      vars: { pg_cluster: pg-test }
`
}

// TestLiveRolesByInstanceName: Patroni's member keys are named as Pigsty
// names the instance, so the live overlay finds pg-test-08 and pg-test-1.0
// (a promoted replica becomes the primary, the old primary a replica).
func TestLiveRolesByInstanceName(t *testing.T) {
	for _, tt := range []struct{ seq, member string }{{"08", "pg-test-08"}, {"1.0", "pg-test-1.0"}} {
		t.Run(tt.seq, func(t *testing.T) {
			m, err := parseModel(t, seqInventory(tt.seq))
			require.NoError(t, err)
			records := m.Clusters[0].Records(ClusterLive{Leader: tt.member, Members: map[string]Member{
				"pg-test-3": {Role: "replica", State: "running"},
				tt.member:   {Role: "primary", State: "running"},
			}}, nil)
			assert.Equal(t, "replica", records[0]["pg_role"])
			assert.Equal(t, "primary", records[1]["pg_role"])
			assert.Equal(t, "primary", records[1]["patroni_role"])
		})
	}
}

// TestNodeValidation: a service definition is validated from the variables
// of the host that renders it. A broken pg_services on the primary refused
// the whole inventory, so `--node <replica>`, which renders its own cluster
// from its own (fine) variables, as Pigsty's service_local does, could not
// start; nor could a node that does not carry the broken cluster at all.
func TestNodeValidation(t *testing.T) {
	inv, err := ParseInventory("inv.yml", []byte(`all:
  children:
    proxy: { hosts: { 10.0.0.9: {} } }
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary, pg_services: [ { name: bad, port: 0o144, selector: "[]" } ] }
        10.0.0.2: { pg_seq: 2, pg_role: replica }
      vars: { pg_cluster: pg-test, pg_services: [ { name: ok, port: 5440, selector: "[]" } ] }
    pg-remote:
      hosts:
        10.0.1.1: { pg_seq: 1, pg_role: primary, pg_services: [ { name: bad, port: 5440, selector: "[? " } ] }
        10.0.1.2: { pg_seq: 2, pg_role: replica }
      vars: { pg_cluster: pg-remote, pg_service_provider: proxy }
    pg-other:
      hosts: { 10.0.2.1: { pg_seq: 1, pg_role: primary } }
      vars: { pg_cluster: pg-other }
`))
	require.NoError(t, err)
	m, err := NewModel(inv)
	require.NoError(t, err, "members are fine; services depend on the rendering host")
	const badLocal = `inv.yml:6: cluster pg-test service bad: port "0o144" is text to Ansible`
	const badRemote = `inv.yml:11: cluster pg-remote service bad selector: invalid JMESPath "[? "`
	tests := []struct {
		node     string
		clusters []string
		services []string // of the first cluster
		errs     []string
	}{
		{"10.0.0.2", []string{"pg-test"}, []string{"primary", "replica", "default", "offline", "ok"}, nil},
		{"10.0.0.1", nil, nil, []string{badLocal}},
		{"10.0.1.2", nil, nil, nil}, // its cluster is served by the proxy
		{"10.0.9.9", nil, nil, []string{"--node 10.0.9.9 is not an inventory host"}},
		{"10.0.0.9", nil, nil, []string{badRemote}}, // remote services: the primary's variables
		{"10.0.2.1", []string{"pg-other"}, []string{"primary", "replica", "default", "offline"}, nil},
		{"", nil, nil, []string{badRemote, badLocal}}, // every cluster, from its primary
	}
	for _, tt := range tests {
		t.Run("node "+tt.node, func(t *testing.T) {
			got, err := m.Select(tt.node, nil)
			if len(tt.errs) > 0 {
				require.Error(t, err)
				assert.True(t, IsInputError(err))
				lines := strings.Split(err.Error(), "\n")
				require.Len(t, lines, len(tt.errs), err.Error())
				for i, want := range tt.errs {
					assert.Contains(t, lines[i], want)
				}
				return
			}
			require.NoError(t, err)
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
			}
			assert.Equal(t, tt.clusters, names)
			if len(got) > 0 {
				var svcs []string
				for _, s := range got[0].Services {
					svcs = append(svcs, s.Name)
				}
				assert.Equal(t, tt.services, svcs)
			}
		})
	}
	// --cluster narrows what is validated as it narrows what is rendered.
	_, err = m.Select("", []string{"pg-other"})
	assert.NoError(t, err)
}

// TestEvaluateRaises: what Python raises fails Pigsty's render, so it is an
// error naming the service, never an empty service. `pg_tag.length(@)`
// returned null on hosts without pg_tag (the chain stopped at the null),
// so the selector silently matched the others.
func TestEvaluateRaises(t *testing.T) {
	exprs := &exprCache{byText: map[string]*Expr{}}
	members := records(host("a", 1, "primary", "pg_tag", "x"), host("b", 2, "replica"))
	tests := []struct{ selector, want string }{
		{"[? pg_tag.length(@) ]", `cluster c service s: selector "[? pg_tag.length(@) ]" failed: length() got null, expected string or array or object (Pigsty's render fails here too)`},
		{"[? missing.keys(@) ]", `cluster c service s: selector "[? missing.keys(@) ]" failed: keys() got null, expected object (Pigsty's render fails here too)`},
		{"[? merge(`{}`, `[[1, 2]]`) ]", "cluster c service s: selector \"[? merge(`{}`, `[[1, 2]]`) ]\" failed: merge() got a key of type number: Python keeps it, pgsvc's objects have string keys only (Python would evaluate it; pgsvc does not model this)"},
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			sel, err := exprs.compile(tt.selector, "test")
			require.NoError(t, err)
			s := &Service{Cluster: "c", Name: "s", Selector: sel}
			_, err = s.Evaluate(members)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}
