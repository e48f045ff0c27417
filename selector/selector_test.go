package selector

import (
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
