package selector

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestErrorLines pins which line an error names. Member errors name the
// line where the host is listed (they named the group's pg_cluster line, or
// the pg_seq line); service errors name the entry (they named the line of
// the list variable).
func TestErrorLines(t *testing.T) {
	tests := []struct{ name, inv, want string }{
		{"missing pg_seq: the host's line, not the group vars",
			`all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary }
        10.0.0.2: { pg_role: replica }
      vars:
        pg_cluster: pg-test
`, "inv.yml:6: cluster pg-test host 10.0.0.2: missing pg_seq"},
		{"missing pg_role of a host in a child group",
			`all:
  children:
    infra: { hosts: { 10.0.0.2: {} } }
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars: { pg_cluster: pg-test }
      children:
        pg-test-sub:
          hosts:
            10.0.0.2:
              pg_seq: 2
`, "inv.yml:10: cluster pg-test host 10.0.0.2: missing pg_role"},
		{"duplicate pg_seq set in group vars: the host's line",
			`all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_role: primary }
        10.0.0.2: { pg_role: replica }
      vars: { pg_cluster: pg-test, pg_seq: 1 }
`, "inv.yml:6: host 10.0.0.2 (cluster pg-test): duplicate pg_seq 1, also used by host 10.0.0.1"},
		{"pg_cluster in host vars: that listing",
			`all:
  children:
    infra:
      hosts:
        10.0.0.1: {}
    db:
      hosts:
        10.0.0.1:
          pg_cluster: pg-test
          pg_seq: 1
`, "inv.yml:8: cluster pg-test host 10.0.0.1: missing pg_role"},
		{"service entry in a block list",
			`all:
  children:
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars:
        pg_cluster: pg-test
        pg_services:
          - { name: ok, port: 5440, selector: "[]" }
          - name: bad
            port: 0
            selector: "[]"
`, "inv.yml:9: cluster pg-test service bad: port 0 is not a port number (1-65535)"},
		{"service entry that is not a mapping",
			`all:
  children:
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars:
        pg_cluster: pg-test
        pg_services:
          - { name: ok, port: 5440, selector: "[]" }
          - oops
`, `inv.yml:9: cluster pg-test: pg_services[1] must be a mapping, got "oops"`},
		{"duplicate port: the later entry",
			`all:
  children:
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars:
        pg_cluster: pg-test
        pg_services:
          - { name: ok, port: 5440, selector: "[]" }
          - { name: again, port: 5440, selector: "[]" }
`, "inv.yml:9: cluster pg-test: services ok and again both use port 5440"},
		{"pg_rto_plan error: the variable's line",
			`all:
  vars:
    pg_rto_plan: { fast: [20, 5, 5, 15, 5, 1s, 0.5s, 1s, 3, 3] }
  children:
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars: { pg_cluster: pg-test }
`, "inv.yml:3: cluster pg-test: pg_rto_plan has no norm plan, which applies when pg_rto is unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseModel(t, tt.inv)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

// TestEvaluateErrorLocation: an error found when a selector runs names the
// file and the definition's line, like the errors found when it is parsed.
func TestEvaluateErrorLocation(t *testing.T) {
	m, err := parseModel(t, `all:
  children:
    pg-test:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }
      vars:
        pg_cluster: pg-test
        pg_services:
          - { name: seqs, port: 5440, selector: "[].pg_seq" }
`)
	require.NoError(t, err)
	c := m.Clusters[0]
	s := c.Services[len(c.Services)-1]
	_, err = s.Evaluate(c.Records(ClusterLive{}, nil))
	require.Error(t, err)
	assert.Equal(t, `inv.yml:8: cluster pg-test service seqs: selector "[].pg_seq" returned a list holding 1, want a list of hosts`, err.Error())
}

// A 300 KB selector is quoted once, shortened, in its error, and costs
// little to refuse (go-jmespath printed it whole and used about 0.9 GB).
func TestLongSelectorError(t *testing.T) {
	for _, tc := range []struct{ name, selector string }{
		{"syntax error at the end", "[? " + strings.Repeat("pg_role == 'replica' && ", 12500) + "]"},
		{"evaluation error", "[? " + strings.Repeat("pg_role == 'replica' && ", 12500) + "pg_seq > 'x' ]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := fmt.Sprintf(`all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary }
        10.0.0.2: { pg_seq: 2, pg_role: replica }
      vars:
        pg_cluster: pg-test
        pg_services: [ { name: long, port: 5440, selector: %q } ]
`, tc.selector)
			require.Greater(t, len(tc.selector), 300_000)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m, err := parseModel(t, inv)
			if err == nil {
				c, _ := m.Cluster("pg-test")
				var recs []Record
				for _, h := range c.Members {
					recs = append(recs, h.Vars)
				}
				for _, s := range c.Services {
					if _, err = s.Evaluate(recs); err != nil {
						break
					}
				}
			}
			runtime.ReadMemStats(&after)
			require.Error(t, err)
			assert.Less(t, len(err.Error()), 600, "one short quote: %s", err)
			assert.Equal(t, 1, strings.Count(err.Error(), "[? pg_role"), "quoted once: %s", err)
			assert.Contains(t, err.Error(), "bytes)")
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(200<<20), "allocated while refusing it")
		})
	}
}
