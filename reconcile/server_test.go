package reconcile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/selector"
)

// serverOf computes the inventory's services and returns the named server
// of the named service.
func serverOf(t *testing.T, inv, service, server string) Server {
	t.Helper()
	i, err := selector.ParseInventory("inv.yml", []byte(inv))
	require.NoError(t, err)
	m, err := selector.NewModel(i)
	require.NoError(t, err)
	d := compute(t, m, Live{})
	s, ok := d.Service(service)
	require.True(t, ok, service)
	sv, ok := s.Server(server)
	require.True(t, ok, server)
	return sv
}

func v2Inventory(hostVars string) string {
	return fmt.Sprintf(`all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary }
        10.0.0.2: { pg_seq: 2, pg_role: replica %s }
      vars: { pg_cluster: pg-test }
`, hostVars)
}

// TestCheckSSLIsAnsibleBool: the template tests
// `patroni_ssl_enabled|default(false)|bool`; only a YAML boolean turned
// check-ssl on before, so `patroni_ssl_enabled: "yes"` or 1 lost TLS checks.
func TestCheckSSLIsAnsibleBool(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"true", true}, {"false", false}, {"yes", true}, {"on", true}, {"no", false}, // YAML 1.1 booleans
		{"'yes'", true}, {"'YES'", true}, {"'On'", true}, {"'1'", true}, {"'true'", true}, {"'TRUE'", true},
		{"'y'", false}, {"'Y'", false}, {"'t'", false}, // not in the filter's list (ansible-core 2.14.18 renders no check-ssl)
		{"1", true}, {"1.0", true}, {"0", false}, {"2", false},
		{"'no'", false}, {"'0'", false}, {"'enabled'", false}, {"''", false}, {"~", false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			sv := serverOf(t, v2Inventory(", patroni_ssl_enabled: "+tt.value), "pg-test-primary", "pg-test-2")
			assert.Equal(t, tt.want, sv.CheckSSL)
		})
	}
	assert.False(t, serverOf(t, v2Inventory(""), "pg-test-primary", "pg-test-2").CheckSSL, "unset: default(false)")
}

// TestServerWeight: the weight written on a server is the one HAProxy uses
// with Pigsty's rendering. v1 writes `weight N` only for a numeric pg_weight
// (otherwise default-server's weight applies, HAProxy's 1 if it has none);
// before, pgsvc always wrote pg_weight or 100.
func TestServerWeight(t *testing.T) {
	v1Inventory := func(hostVars, options string) string {
		svc := `{ name: ro, src_port: 5440, selector: "[]" }`
		if options != "" {
			svc = fmt.Sprintf(`{ name: ro, src_port: 5440, selector: "[]", haproxy: { default_server_options: %q } }`, options)
		}
		return fmt.Sprintf(`all:
  children:
    pg-test:
      hosts:
        10.0.0.1: { pg_seq: 1, pg_role: primary }
        10.0.0.2: { pg_seq: 2, pg_role: replica %s }
      vars: { pg_cluster: pg-test, pg_services_extra: [ %s ] }
`, hostVars, svc)
	}
	tests := []struct {
		name, inv, service string
		want               int
	}{
		{"v2 unset: 100", v2Inventory(""), "pg-test-primary", 100},
		{"v2 number", v2Inventory(", pg_weight: 20"), "pg-test-primary", 20},
		{"v2 quoted number is printed as is", v2Inventory(`, pg_weight: "20"`), "pg-test-primary", 20},
		{"v2 unset: 100 even when options say otherwise", strings.Replace(v2Inventory(""), "vars: { pg_cluster: pg-test }",
			`vars: { pg_cluster: pg-test, pg_default_services: [{ name: ro, port: 5440, selector: "[]", options: "inter 1s weight 7" }] }`, 1), "pg-test-ro", 100},
		{"v1 number", v1Inventory(", pg_weight: 20", ""), "pg-test-ro", 20},
		{"v1 unset: the seed line's weight 100", v1Inventory("", ""), "pg-test-ro", 100},
		{"v1 unset: the options' weight", v1Inventory("", "inter 1s weight 7"), "pg-test-ro", 7},
		{"v1 unset: the options' last weight", v1Inventory("", "weight 7 inter 1s weight 9"), "pg-test-ro", 9},
		{"v1 unset, options without weight: HAProxy's 1", v1Inventory("", "inter 1s"), "pg-test-ro", 1},
		{"v1 quoted is not a number: the options decide", v1Inventory(`, pg_weight: "20"`, "inter 1s weight 7"), "pg-test-ro", 7},
		{"v1 zero is a number", v1Inventory(", pg_weight: 0", "inter 1s weight 7"), "pg-test-ro", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, serverOf(t, tt.inv, tt.service, "pg-test-2").Weight)
		})
	}
}
