package selector

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultServerTiming pins default-server to what each Pigsty era's
// template renders for the same pg_rto / pg_rto_plan.
func TestDefaultServerTiming(t *testing.T) {
	const custom = "pg_rto_plan: { norm: [30, 5, 10, 25, 5, 4s, 2s, 4s, 2, 5], x: [1, 1, 1, 1, 1, 7s, 7s, 7s, 7, 7] }"
	line := func(inter, fast, down, rise, fall string) string {
		return fmt.Sprintf("inter %s fastinter %s downinter %s rise %s fall %s on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100",
			inter, fast, down, rise, fall)
	}
	tests := []struct {
		name, vars, want string
	}{
		{"unset: the seed line", "", SeedServerOptions},
		{"numeric TTL without a plan (v2/v3): the seed line", "pg_rto: 30", SeedServerOptions},
		{"named plan (v4 defaults)", "pg_rto: fast", line("1s", "0.5s", "1s", "3", "3")},
		{"unknown name falls back to norm", "pg_rto: bogus", line("2s", "1s", "2s", "3", "3")},
		{"custom plan row", "pg_rto: x, " + custom, line("7s", "7s", "7s", "7", "7")},
		{"numeric with a plan (v4): norm of that plan", "pg_rto: 30, " + custom, line("4s", "2s", "4s", "2", "5")},
		// pg_rto unset with a plan: v4's role default pg_rto: norm applies
		// (this was the seed line, as if the inventory were v2/v3).
		{"plan without pg_rto (v4 default norm): norm of that plan", custom, line("4s", "2s", "4s", "2", "5")},
		{"explicit options win", "pg_rto: fast, pg_default_services: [{ name: primary, port: 5433, selector: '[]', options: 'inter 9s' }]", "inter 9s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := fmt.Sprintf("all:\n  children:\n    pg-test:\n      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-test %s }\n",
				map[bool]string{true: "", false: ", " + tt.vars}[tt.vars == ""])
			model, err := parseModel(t, inv)
			require.NoError(t, err)
			require.NotEmpty(t, model.Clusters[0].Services)
			assert.Equal(t, tt.want, model.Clusters[0].Services[0].Options)
		})
	}
}

// parseModel is the model of text as rendered without --node: NewModel,
// then Select of every cluster (which reports service definitions that do
// not build from the primaries' variables).
func parseModel(t *testing.T, text string) (*Model, error) {
	t.Helper()
	inv, err := ParseInventory("inv.yml", []byte(text))
	require.NoError(t, err)
	m, err := NewModel(inv)
	if err != nil {
		return nil, err
	}
	if _, err := m.Select("", nil); err != nil {
		return nil, err
	}
	return m, nil
}
