package selector

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func clusterInventory(allVars, clusterVars, hostVars string) string {
	return fmt.Sprintf(`all:
  vars: { x: 0 %s }
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary }
        10.0.0.2: { pg_seq: 2, pg_role: replica %s }
      vars:
        pg_cluster: pg-test
%s`, allVars, hostVars, clusterVars)
}

// TestQuotedIntegers: Pigsty's template prints port, maxconn and pg_weight
// as written, so a quoted integer works there as a number does. They were
// refused ("port \"5440\" is not a port number").
func TestQuotedIntegers(t *testing.T) {
	tests := []struct {
		name, clusterVars, hostVars string
		check                       func(t *testing.T, m *Model)
	}{
		{"v2 port and maxconn", `        pg_services: [{ name: q, port: "5440", maxconn: "100", selector: "[]" }]` + "\n", "",
			func(t *testing.T, m *Model) {
				s := m.Clusters[0].Services[4]
				assert.Equal(t, 5440, s.Port)
				assert.Equal(t, 100, s.Maxconn)
			}},
		{"v1 src_port and haproxy.maxconn", `        pg_services_extra: [{ name: q, src_port: "5440", selector: "[]", haproxy: { maxconn: "100" } }]` + "\n", "",
			func(t *testing.T, m *Model) {
				s := m.Clusters[0].Services[0]
				assert.Equal(t, 1, s.Schema)
				assert.Equal(t, 5440, s.Port)
				assert.Equal(t, 100, s.Maxconn)
			}},
		{"pg_weight and host ports", "", `, pg_weight: "50", pg_port: "5433"`,
			func(t *testing.T, m *Model) {
				r := m.Clusters[0].Members[1].Vars
				s := m.Clusters[0].Services[2] // default: dest postgres
				assert.Equal(t, 5433, s.ServerPort(r))
				n, ok := TemplateInt(r["pg_weight"])
				assert.True(t, ok)
				assert.Equal(t, 50, n)
			}},
		{"a quoted dest stays a port (differs from Pigsty on purpose)", `        pg_services: [{ name: q, port: 5440, dest: "6543", selector: "[]" }]` + "\n", "",
			func(t *testing.T, m *Model) {
				assert.Equal(t, Dest{Kind: DestPort, Port: 6543}, m.Clusters[0].Services[4].Dest)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseModel(t, clusterInventory("", tt.clusterVars, tt.hostVars))
			require.NoError(t, err)
			tt.check(t, m)
		})
	}
}

func TestQuotedIntegerErrors(t *testing.T) {
	tests := []struct{ name, clusterVars, hostVars, want string }{
		{"port not a plain integer", `        pg_services: [{ name: q, port: "54x0", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: port "54x0" is not a port number (1-65535)`},
		{"port with a sign", `        pg_services: [{ name: q, port: "+5440", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: port "+5440" is not a port number (1-65535)`},
		{"port out of range", `        pg_services: [{ name: q, port: "70000", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: port "70000" is not a port number (1-65535)`},
		{"maxconn not an integer", `        pg_services: [{ name: q, port: 5440, maxconn: "1e3", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: maxconn "1e3" is not a non-negative integer`},
		{"pg_weight out of range", "", `, pg_weight: "300"`,
			`inv.yml:7: host 10.0.0.2 (cluster pg-test): pg_weight "300" is outside 0-256`},
		{"pg_weight with spaces", "", `, pg_weight: " 50"`,
			`inv.yml:7: host 10.0.0.2 (cluster pg-test): pg_weight " 50" is not a weight (0-256)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseModel(t, clusterInventory("", tt.clusterVars, tt.hostVars))
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

// TestSchemaDetection: a cluster is v1 only when its entries are v1 or the
// v1 hook pg_services_extra holds services. An empty pg_services_extra: []
// left in all.vars made the cluster v1 and dropped the four defaults.
func TestSchemaDetection(t *testing.T) {
	tests := []struct {
		name, allVars, clusterVars string
		schema                     int
		services                   []string
	}{
		{"empty pg_services_extra in all.vars", ", pg_services_extra: []", "", 2,
			[]string{"primary", "replica", "default", "offline"}},
		{"null pg_services_extra", ", pg_services_extra: ~", "", 2,
			[]string{"primary", "replica", "default", "offline"}},
		{"empty pg_services_extra and a v2 service", ", pg_services_extra: []",
			`        pg_services: [{ name: standby, port: 5435, selector: "[]" }]` + "\n", 2,
			[]string{"primary", "replica", "default", "offline", "standby"}},
		{"v1 entries in pg_services", ", pg_services_extra: []",
			`        pg_services: [{ name: primary, src_port: 5433, selector: "[]" }]` + "\n", 1,
			[]string{"primary"}},
		{"services in pg_services_extra", "",
			`        pg_services_extra: [{ name: standby, src_port: 5435, selector: "[]" }]` + "\n", 1,
			[]string{"standby"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseModel(t, clusterInventory(tt.allVars, tt.clusterVars, ""))
			require.NoError(t, err)
			var names []string
			for _, s := range m.Clusters[0].Services {
				assert.Equal(t, tt.schema, s.Schema, s.Name)
				names = append(names, s.Name)
			}
			assert.Equal(t, tt.services, names)
		})
	}
}
