package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// The hold's decisions from the facts alone: which clusters hold at all,
// and a promotion releasing only once HAProxy showed the new leader alone
// up in the primary services.
func TestDecideHold(t *testing.T) {
	cfg := HoldConfig{Enabled: true, Max: 5 * time.Second, Leaderless: 2 * time.Second}
	now := time.Now()
	requested := func(config *dcs.Config) *dcs.Cluster {
		return &dcs.Cluster{Leader: "pg-test-1", LeaderTerm: 10, Config: config,
			Members:  map[string]selector.Member{"pg-test-1": {Role: "primary", State: "running"}, "pg-test-2": {Role: "replica", State: "running"}},
			Failover: &dcs.Failover{Leader: "pg-test-1", Member: "pg-test-2", Revision: 11}}
	}
	for _, tc := range []struct {
		name  string
		dc    *dcs.Cluster
		facts holdFacts
		holds bool
	}{
		{"a requested switchover holds", requested(&dcs.Config{}), holdFacts{holdable: true}, true},
		{"no config key: not known to be a primary cluster", requested(nil), holdFacts{holdable: true}, false},
		{"a standby cluster", requested(&dcs.Config{Standby: true}), holdFacts{holdable: true}, false},
		{"no primary service to hold", requested(&dcs.Config{}), holdFacts{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, on, _, _ := decideHold("pg-test", tc.dc, nil, true, cfg, now, tc.facts)
			assert.Equal(t, tc.holds, on)
		})
	}

	dc := requested(&dcs.Config{})
	h, on, _, _ := decideHold("pg-test", dc, nil, true, cfg, now, holdFacts{holdable: true})
	assert.True(t, on)
	promoted := *dc
	promoted.Leader, promoted.LeaderTerm = "pg-test-2", 12
	promoted.Members = map[string]selector.Member{"pg-test-1": {Role: "replica", State: "running"}, "pg-test-2": {Role: "primary", State: "running"}}
	for _, tc := range []struct {
		name  string
		facts holdFacts
		holds bool
	}{
		{"promoted, REST says primary, HAProxy not yet fenced", holdFacts{holdable: true, answered: true}, true},
		{"promoted, HAProxy fenced", holdFacts{holdable: true, answered: true, fenced: true}, false},
		{"member key says primary, HAProxy fenced", holdFacts{holdable: true, fenced: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, on, _, _ := decideHold("pg-test", &promoted, h, true, cfg, now.Add(time.Second), tc.facts)
			assert.Equal(t, tc.holds, on)
		})
	}
}
