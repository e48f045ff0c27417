package selector

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/selector/jmes"
)

// obj is a mapping as the inventory reads it: keys in the order given.
func obj(kv ...any) *jmes.Object {
	o := jmes.NewObject()
	for i := 0; i+1 < len(kv); i += 2 {
		o.Set(kv[i].(string), kv[i+1])
	}
	return o
}

// TestYAML11Booleans pins how Ansible (PyYAML, YAML 1.1) types scalars that
// yaml.v3 (YAML 1.2) reads as strings: a plain yes/no/on/off was a string,
// so `pg_offline_query: yes` selected nothing in the offline service.
func TestYAML11Booleans(t *testing.T) {
	tests := []struct {
		value string
		want  any
	}{
		{"yes", true}, {"Yes", true}, {"YES", true}, {"on", true}, {"On", true}, {"ON", true},
		{"no", false}, {"No", false}, {"NO", false}, {"off", false}, {"Off", false}, {"OFF", false},
		{"true", true}, {"False", false},
		{"'yes'", "yes"}, {`"on"`, "on"}, {"!!str off", "off"}, // quoted or tagged: strings
		{"y", "y"}, {"n", "n"}, {"yEs", "yEs"}, // not booleans in PyYAML either
		{"[yes, 'no', off]", []any{true, "no", false}},
		{"{ a: on, b: { c: NO } }", obj("a", true, "b", obj("c", false))},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			inv, err := ParseInventory("inv.yml", []byte("all:\n  hosts:\n    h1: { x: "+tt.value+" }\n"))
			require.NoError(t, err)
			assert.Equal(t, tt.want, inv.Hosts[0].Vars["x"])
		})
	}
}

// TestYAMLMergeAndAliases pins merge keys and aliases as PyYAML resolves
// them: before, `<<` became a variable named "<<" and an aliased host or
// vars mapping was refused.
func TestYAMLMergeAndAliases(t *testing.T) {
	const head = "all:\n  vars:\n    common: &common { pg_weight: 10, pg_port: 5433 }\n    other: &other { pg_weight: 20, patroni_port: 8009 }\n    hv: &hv { pg_seq: 2, pg_role: replica }\n  children:\n    pg-test:\n"
	tests := []struct {
		name, body string
		host       string
		want       map[string]any // variables of host
	}{
		{"group vars merge, explicit key wins",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary } }\n      vars: { <<: *common, pg_cluster: pg-test, pg_port: 6000 }\n",
			"h1", map[string]any{"pg_weight": int64(10), "pg_port": int64(6000)}},
		{"explicit key before the merge key still wins",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_port: 6000, <<: *common, pg_cluster: pg-test }\n",
			"h1", map[string]any{"pg_weight": int64(10), "pg_port": int64(6000)}},
		{"merge list: the earlier mapping wins",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary } }\n      vars: { <<: [*common, *other], pg_cluster: pg-test }\n",
			"h1", map[string]any{"pg_weight": int64(10), "pg_port": int64(5433), "patroni_port": int64(8009)}},
		{"host vars merge",
			"      hosts: { h1: { <<: *common, pg_seq: 1, pg_role: primary, pg_weight: 30 } }\n      vars: { pg_cluster: pg-test }\n",
			"h1", map[string]any{"pg_weight": int64(30), "pg_port": int64(5433)}},
		{"host vars as an alias",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary }, h2: *hv }\n      vars: { pg_cluster: pg-test }\n",
			"h2", map[string]any{"pg_seq": int64(2), "pg_role": "replica"}},
		{"group vars as an alias",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary } }\n      vars: *common\n",
			"h1", map[string]any{"pg_weight": int64(10), "pg_port": int64(5433)}},
		{"merge key in an inline mapping value",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-test, m: { <<: *other, pg_weight: 1 } }\n",
			"h1", map[string]any{"m": obj("pg_weight", int64(1), "patroni_port", int64(8009))}}, // PyYAML's order: merged keys first
		{"a quoted << is an ordinary key",
			"      hosts: { h1: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-test, '<<': 5 }\n",
			"h1", map[string]any{"<<": int64(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := ParseInventory("inv.yml", []byte(head+tt.body))
			require.NoError(t, err)
			h, ok := inv.Host(tt.host)
			require.True(t, ok)
			for k, v := range tt.want {
				assert.Equal(t, v, h.Vars[k], k)
			}
			if _, quoted := tt.want["<<"]; !quoted {
				assert.NotContains(t, h.Vars, "<<", "a merge key is not a variable")
			}
		})
	}
}

// TestYAMLMergeServices: service entries built from anchors and merge keys
// are the services Pigsty renders.
func TestYAMLMergeServices(t *testing.T) {
	inv := `all:
  vars:
    svc: &svc { selector: "[]", dest: postgres, check: /primary, maxconn: 100 }
  children:
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars:
        pg_cluster: pg-test
        pg_default_services:
          - { <<: *svc, name: primary, port: 5433 }
          - <<: *svc
            name: extra
            port: 5440
            maxconn: 200
        pg_services: &extra
          - { <<: *svc, name: standby, port: 5435, check: /sync }
    pg-b:
      hosts: { 10.0.0.2: { pg_seq: 1, pg_role: primary } }
      vars: { pg_cluster: pg-b, pg_default_services: [], pg_services: *extra }
`
	m, err := parseModel(t, inv)
	require.NoError(t, err)
	c, _ := m.Cluster("pg-test")
	var got []string
	for _, s := range c.Services {
		got = append(got, fmt.Sprintf("%s:%d %s %s maxconn=%d line=%d", s.Name, s.Port, s.Dest, s.CheckURI, s.Maxconn, s.Line))
	}
	assert.Equal(t, []string{
		"primary:5433 postgres /primary maxconn=100 line=10",
		"extra:5440 postgres /primary maxconn=200 line=11",
		"standby:5435 postgres /sync maxconn=100 line=16",
	}, got)
	b, _ := m.Cluster("pg-b")
	require.Len(t, b.Services, 1)
	assert.Equal(t, "standby", b.Services[0].Name)
}

func TestYAMLResolveErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"merge of a scalar", "all:\n  vars: { <<: 5 }\n", "inv.yml:2: merge key << takes a mapping or a list of mappings, got \"5\""},
		{"merge of a list of scalars", "all:\n  vars:\n    <<: [ a ]\n", "inv.yml:3: merge key << takes a mapping or a list of mappings, got a list holding \"a\""},
		{"alias inside its own anchor", "all:\n  vars: { a: &a [ 1, *a ] }\n", "inv.yml:2: alias *a refers to a value that contains it"},
		{"alias bomb", bomb(), "aliases expand the inventory beyond 1000000 values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInventory("inv.yml", []byte(tt.doc))
			require.Error(t, err)
			assert.True(t, IsInputError(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// bomb is a billion-laughs document: 10^9 values once aliases are expanded.
func bomb() string {
	var b strings.Builder
	b.WriteString("all:\n  vars:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "    l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	return b.String()
}

// TestMagicVariables: selectors may read what Ansible puts in hostvars.
func TestMagicVariables(t *testing.T) {
	inv, err := ParseInventory("inv.yml", []byte(`all:
  hosts: { lone.example.com: {} }
  children:
    pg-test:
      hosts: { 10.0.0.1: {}, db1.dc1.example.com: {}, "fe80::1": {} }
      children: { zeta: { hosts: { 10.0.0.1: {} } } }
    alpha: { hosts: { db1.dc1.example.com: {} } }
`))
	require.NoError(t, err)
	tests := []struct {
		host, short string
		groups      []any
	}{
		{"10.0.0.1", "10.0.0.1", []any{"pg-test", "zeta"}}, // an IP address is not cut (ansible-core >= 2.13)
		{"db1.dc1.example.com", "db1", []any{"alpha", "pg-test"}},
		{"fe80::1", "fe80::1", []any{"pg-test"}},
		{"lone.example.com", "lone", []any{"ungrouped"}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			h, ok := inv.Host(tt.host)
			require.True(t, ok)
			assert.Equal(t, tt.short, h.Vars["inventory_hostname_short"])
			assert.Equal(t, tt.groups, h.Vars["group_names"])
		})
	}
}

// TestYAMLSyntaxErrorLines pins the line a YAML syntax error names: the
// culprit's, as an editor numbers it. yaml.v3 named the line before an
// unclosed '{' or '[' (an unclosed '{' on line 5 was reported as line 4),
// the enclosing mapping's line for bad indentation, the line before a tab,
// and, for a quote opened on the first line, the end of the file.
func TestYAMLSyntaxErrorLines(t *testing.T) {
	const hosts = "all:\n  children:\n    pg-test:\n      hosts:\n"
	tests := []struct{ name, doc, want string }{
		{"unclosed { on line 5",
			hosts + "        10.0.0.1: { pg_seq: 1, pg_role: primary\n        10.0.0.2: { pg_seq: 2, pg_role: replica }\n      vars: { pg_cluster: pg-test }\n",
			`inv.yml:5: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "        10.0.0.1: { pg_seq: 1, pg_role: primary"`},
		{"unclosed { on the last line",
			hosts + "        10.0.0.1: { pg_seq: 1, pg_role: primary\n",
			`inv.yml:5: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "        10.0.0.1: { pg_seq: 1, pg_role: primary"`},
		{"unclosed { on line 1", "{ all: {}\nfoo: 1\n",
			`inv.yml:1: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "{ all: {}"`},
		{"unclosed { spanning lines", "all:\n  vars: {\n    pg_weight: 1,\n    pg_port: 5432\n  children: {}\n",
			`inv.yml:2: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "  vars: {"`},
		{"unclosed [ on line 4", "all:\n  vars:\n    pg_cluster: pg-test\n    pg_services: [ a, b\n    pg_weight: 1\n",
			`inv.yml:4: malformed YAML: did not find expected ',' or ']' (a '[' on this line is not closed): "    pg_services: [ a, b"`},
		{"key indented too little", "all:\n  vars:\n    pg_weight: 1\n   pg_port: 5432\n",
			`inv.yml:4: malformed YAML: did not find expected key (this line's indentation does not match the lines above): "   pg_port: 5432"`},
		{"key indented too little, far below its mapping",
			hosts + "        10.0.0.1: {}\n        10.0.0.2: {}\n        10.0.0.3: {}\n        10.0.0.4: {}\n     vars: {}\n",
			`inv.yml:9: malformed YAML: did not find expected key (this line's indentation does not match the lines above): "     vars: {}"`},
		{"key indented too far", "all:\n  vars:\n    pg_weight: 1\n      pg_port: 5432\n",
			`inv.yml:4: malformed YAML: mapping values are not allowed in this context (unexpected ':' here: is the line indented too far, or does a value with ': ' need quotes?): "      pg_port: 5432"`},
		{"list item indented too little", "all:\n  vars:\n    pg_hba:\n      - a\n     - b\n",
			`inv.yml:5: malformed YAML: did not find expected key (this line's indentation does not match the lines above): "     - b"`},
		{"tab indentation after a scalar", "all:\n  vars:\n    pg_weight: 1\n\tpg_port: 5432\n",
			`inv.yml:4: malformed YAML: found a tab character that violates indentation (tab in the indentation: YAML indents with spaces only): "\tpg_port: 5432"`},
		{"tab indentation after a key", "all:\n  vars:\n\tpg_port: 5432\n",
			`inv.yml:3: malformed YAML: found character that cannot start any token (tab in the indentation: YAML indents with spaces only): "\tpg_port: 5432"`},
		{"tab on line 1", "\tall: {}\n",
			`inv.yml:1: malformed YAML: found character that cannot start any token (tab in the indentation: YAML indents with spaces only): "\tall: {}"`},
		{"unclosed double quote", "all:\n  vars:\n    pg_cluster: \"pg-test\n    pg_weight: 1\n",
			`inv.yml:3: malformed YAML: found unexpected end of stream (a quote on this line is not closed): "    pg_cluster: \"pg-test"`},
		{"unclosed single quote", "all:\n  vars:\n    pg_cluster: 'pg-test\n    pg_weight: 1\n",
			`inv.yml:3: malformed YAML: found unexpected end of stream (a quote on this line is not closed): "    pg_cluster: 'pg-test"`},
		{"unclosed quote on line 1", "\"all: {}\nfoo: 1\n",
			`inv.yml:1: malformed YAML: found unexpected end of stream (a quote on this line is not closed): "\"all: {}"`},
		{"stray }", "all:\n  vars:\n    pg_weight: }\n",
			`inv.yml:3: malformed YAML: did not find expected node content: "    pg_weight: }"`},
		{"unknown alias", "all:\n  vars:\n    pg_weight: 1\n    pg_port: *port\n",
			`inv.yml:4: malformed YAML: unknown anchor 'port' referenced: "    pg_port: *port"`},
		{"CRLF line ends", "all:\r\n  vars: { pg_weight: 1\r\n  children: {}\r\n",
			`inv.yml:2: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "  vars: { pg_weight: 1"`},
		{"no final newline", "all:\n  vars: { pg_weight: 1",
			`inv.yml:2: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "  vars: { pg_weight: 1"`},
		{"byte order mark", "\ufeffall:\n  vars: { pg_weight: 1\n",
			`inv.yml:2: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "  vars: { pg_weight: 1"`},
		{"long line is clipped", "all:\n  vars: { pg_cluster: " + strings.Repeat("é", 100) + "\n",
			`inv.yml:2: malformed YAML: did not find expected ',' or '}' (a '{' on this line is not closed): "  vars: { pg_cluster: ` + strings.Repeat("é", 49) + `…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInventory("inv.yml", []byte(tt.doc))
			require.Error(t, err)
			assert.True(t, IsInputError(err))
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

// TestMappingOrder: a mapping in the inventory keeps the order written, as
// the dict PyYAML builds does, wherever a selector sees order (keys(),
// values(), `*`, to_string, merge). They came out sorted (Go maps), so
// `keys(m)[0] == 'z'` selected nothing where Pigsty selects the host.
// Every answer is what Pigsty's json_query gave for this inventory
// (ansible-core 2.14.18, python3-jmespath 1.0.1).
func TestMappingOrder(t *testing.T) {
	m, err := parseModel(t, `all:
  vars:
    base: &base { y: 1, b: 2 }
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary, m: { z: 1, a: 2 } }
        10.0.0.2: { pg_seq: 2, pg_role: replica, m: { a: 2, z: 1 } }
        10.0.0.3: { pg_seq: 3, pg_role: replica, m: { z: 3, b: 1, a: 2 }, l: [ { z: 1, a: 2 } ], n: { <<: *base, z: 0 } }
      vars: { pg_cluster: pg-test }
`)
	require.NoError(t, err)
	c := m.Clusters[0]
	exprs := &exprCache{byText: map[string]*Expr{}}
	tests := []struct {
		selector string
		want     []string
	}{
		{"[? keys(m)[0] == 'z' ]", []string{"10.0.0.1", "10.0.0.3"}},
		{"[? values(m)[0] == `2` ]", []string{"10.0.0.2"}},
		{"[? m.* | [-1] == `2` ]", []string{"10.0.0.1", "10.0.0.3"}},
		{`[? to_string(m) == '{"a":2,"z":1}' ]`, []string{"10.0.0.2"}},
		{"[? join(',', keys(merge(m, `{\"b\": 0}`))) == 'z,b,a' ]", []string{"10.0.0.3"}},
		{"[? l && keys(l[0])[0] == 'z' ]", []string{"10.0.0.3"}},               // inside a list
		{"[? n && join(',', keys(n)) == 'y,b,z' ]", []string{"10.0.0.3"}},      // merged keys first
		{"[? m == `{\"a\": 2, \"z\": 1}` ]", []string{"10.0.0.1", "10.0.0.2"}}, // == ignores order
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			sel, err := exprs.compile(tt.selector, "test")
			require.NoError(t, err)
			s := &Service{Cluster: c.Name, Name: "order", Selector: sel}
			picks, err := s.Evaluate(c.Records(ClusterLive{}, nil))
			require.NoError(t, err)
			var got []string
			for _, p := range picks {
				got = append(got, p.Record["inventory_hostname"].(string))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
