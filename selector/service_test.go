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
			`inv.yml:10: cluster pg-test service q: port "54x0" is text to Ansible, not a port number (1-65535) (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and HAProxy would bind port 54`},
		{"port with a sign", `        pg_services: [{ name: q, port: "+5440", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: port "+5440" is not a port number (1-65535)`},
		{"port out of range", `        pg_services: [{ name: q, port: "70000", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: port "70000" is not a port number (1-65535)`},
		{"maxconn not an integer", `        pg_services: [{ name: q, port: 5440, maxconn: "1e3", selector: "[]" }]` + "\n", "",
			`inv.yml:10: cluster pg-test service q: maxconn "1e3" is text to Ansible, not a non-negative integer (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and HAProxy would read maxconn 1; write 1000`},
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

// TestNumberErrors: a number that is text to Ansible (`0o144`, `1e2`), or
// that YAML 1.1 reads as another number than its digits say (`4:40` is
// 280), is refused with the value as written, how Ansible read it and what
// Pigsty and HAProxy would make of it. Service-level values got generic
// messages ("port \"0o144\" is not a port number"), and `4:40` was
// reported as "280 is outside 0-256".
func TestNumberErrors(t *testing.T) {
	const yaml11 = "(YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers)"
	svc := func(fields string) string {
		return "        pg_services: [{ name: q, selector: \"[]\", " + fields + " }]\n"
	}
	tests := []struct{ name, clusterVars, hostVars, want string }{
		{"bind port 0o144", svc("port: 0o144"), "",
			`inv.yml:10: cluster pg-test service q: port "0o144" is text to Ansible, not a port number (1-65535) ` + yaml11 + `: Pigsty would print it as written and HAProxy would refuse the bind (invalid port); write 100`},
		{"bind port 1e2", svc("port: 1e2"), "",
			`inv.yml:10: cluster pg-test service q: port "1e2" is text to Ansible, not a port number (1-65535) ` + yaml11 + `: Pigsty would print it as written and HAProxy would bind port 1; write 100`},
		{"bind port sexagesimal", svc("port: 1111:40"), "",
			"inv.yml:10: cluster pg-test service q: port 1111:40 is 66700 to Ansible (YAML 1.1 reads it as base 60: 1111×60+40), not a port number (1-65535): Pigsty would print 66700 and HAProxy would refuse the bind (invalid port)"},
		{"maxconn 1e3", svc("port: 5440, maxconn: 1e3"), "",
			`inv.yml:10: cluster pg-test service q: maxconn "1e3" is text to Ansible, not a non-negative integer ` + yaml11 + `: Pigsty would print it as written and HAProxy would read maxconn 1; write 1000`},
		{"maxconn negative octal", svc("port: 5440, maxconn: -010"), "",
			"inv.yml:10: cluster pg-test service q: maxconn -010 is -8 to Ansible (YAML 1.1 reads it as octal), not a non-negative integer: Pigsty would print -8 and HAProxy would read maxconn -8"},
		{"dest text 0o144", svc(`port: 5440, dest: "0o144"`), "",
			`inv.yml:10: cluster pg-test service q: dest "0o144" is neither postgres, pgbouncer, default nor a port number: Pigsty's template would send traffic to port 5432 (text other than postgres and pgbouncer falls through to it)`},
		{"dest sexagesimal", svc("port: 5440, dest: 1111:40"), "",
			"inv.yml:10: cluster pg-test service q: dest 1111:40 is 66700 to Ansible (YAML 1.1 reads it as base 60: 1111×60+40), neither postgres, pgbouncer, default nor a port number: Pigsty would print 66700 and HAProxy would refuse the server (invalid port)"},
		{"pg_default_service_dest 1e2", "        pg_default_service_dest: 1e2\n", "",
			`inv.yml:10: cluster pg-test service primary (pg_default_service_dest): dest "1e2" is neither postgres, pgbouncer, default nor a port number: Pigsty's template would send traffic to port 5432 (text other than postgres and pgbouncer falls through to it)`},
		{"v1 haproxy maxconn 1e3", "        pg_services_extra: [{ name: q, src_port: 5440, selector: \"[]\", haproxy: { maxconn: 1e3 } }]\n", "",
			`inv.yml:10: cluster pg-test service q haproxy: maxconn "1e3" is text to Ansible, not a non-negative integer ` + yaml11 + `: Pigsty would print it as written and HAProxy would read maxconn 1; write 1000`},
		{"v1 check_code 2e2", "        pg_services_extra: [{ name: q, src_port: 5440, selector: \"[]\", check_code: 2e2 }]\n", "",
			`inv.yml:10: cluster pg-test service q: check_code "2e2" is text to Ansible, not a non-negative integer ` + yaml11 + `: Pigsty would print it as written and HAProxy would expect status 2; write 200`},
		{"pg_weight sexagesimal", "", ", pg_weight: 4:40",
			"inv.yml:7: host 10.0.0.2 (cluster pg-test): pg_weight 4:40 is 280 to Ansible (YAML 1.1 reads it as base 60: 4×60+40), outside 0-256: Pigsty would print 280 and HAProxy would refuse it (weights are 0-256)"},
		{"pg_weight hexadecimal", "", ", pg_weight: 0x118",
			"inv.yml:7: host 10.0.0.2 (cluster pg-test): pg_weight 0x118 is 280 to Ansible (YAML 1.1 reads it as hexadecimal), outside 0-256: Pigsty would print 280 and HAProxy would refuse it (weights are 0-256)"},
		{"pg_weight plain", "", ", pg_weight: 280",
			"inv.yml:7: host 10.0.0.2 (cluster pg-test): pg_weight 280 is outside 0-256"},
		{"pg_port sexagesimal", "", ", pg_port: 1111:40",
			"inv.yml:7: host 10.0.0.2 (cluster pg-test): pg_port 1111:40 is 66700 to Ansible (YAML 1.1 reads it as base 60: 1111×60+40), not a port number: Pigsty would print 66700 and HAProxy would refuse the server (invalid port)"},
		{"pgbouncer_port 0o144", "", ", pgbouncer_port: 0o144",
			`inv.yml:7: host 10.0.0.2 (cluster pg-test): pgbouncer_port "0o144" is text to Ansible, not a port number ` + yaml11 + `: Pigsty would print it as written and HAProxy would read port 0 (the port each client connected to); write 100`},
		{"patroni_port with underscores out of range", "", ", patroni_port: 80_080",
			"inv.yml:7: host 10.0.0.2 (cluster pg-test): patroni_port 80_080 is 80080 to Ansible (YAML 1.1 reads it as the digits without the underscores), not a port number: Pigsty would print 80080 and HAProxy would check port 80080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseModel(t, clusterInventory("", tt.clusterVars, tt.hostVars))
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}
