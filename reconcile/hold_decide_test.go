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

// Every way a hold ends, decided from the facts of the pass that sees
// them, and a crash failover (no request) never holding.
func TestDecideHoldEnds(t *testing.T) {
	cfg := HoldConfig{Enabled: true, Max: 5 * time.Second, Leaderless: 2 * time.Second}
	now := time.Now()
	members := map[string]selector.Member{"pg-test-1": {Role: "primary", State: "running"}, "pg-test-2": {Role: "replica", State: "running"}}
	requested := &dcs.Cluster{Leader: "pg-test-1", LeaderTerm: 10, Config: &dcs.Config{}, Members: members,
		Failover: &dcs.Failover{Leader: "pg-test-1", Member: "pg-test-2", Revision: 11}}
	facts := holdFacts{holdable: true}
	h, on, _, _ := decideHold("pg-test", requested, nil, true, cfg, now, facts)
	assert.True(t, on)

	crash := &dcs.Cluster{Leader: "pg-test-2", LeaderTerm: 12, Config: &dcs.Config{}, Members: members}
	_, on, _, ev := decideHold("pg-test", crash, nil, true, cfg, now, facts)
	assert.False(t, on, "a crash failover: the leader moved with no request")
	assert.Nil(t, ev)

	leaderless := *requested
	leaderless.Leader, leaderless.LeaderTerm = "", 0
	off := cfg
	off.Enabled = false
	for _, tc := range []struct {
		name   string
		dc     *dcs.Cluster
		cfg    HoldConfig
		after  time.Duration
		result string // "": still holding
	}{
		{"still requested, inside hold_max", requested, cfg, time.Second, ""},
		{"holding turned off (SIGHUP)", requested, off, time.Second, holdOff},
		{"hold_max", requested, cfg, cfg.Max, holdMax},
		{"request cleared, old leader leads", &dcs.Cluster{Leader: "pg-test-1", LeaderTerm: 10, Config: &dcs.Config{}, Members: members}, cfg, time.Second, holdAborted},
		{"leader key gone, first seen", &leaderless, cfg, time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, on, _, ev := decideHold("pg-test", tc.dc, h, true, tc.cfg, now.Add(tc.after), facts)
			assert.Equal(t, tc.result == "", on)
			if tc.result == "" {
				assert.Nil(t, ev)
				return
			}
			if assert.NotNil(t, ev) {
				assert.Equal(t, tc.result, ev.Result, ev.Cause)
				assert.Equal(t, tc.after, ev.Held)
			}
			assert.Equal(t, tc.result, n.result)
		})
	}

	// The leader key absent for Leaderless ends the hold; present again
	// before that, the clock starts over.
	gone, on, due, _ := decideHold("pg-test", &leaderless, h, true, cfg, now.Add(time.Second), facts)
	assert.True(t, on)
	assert.Equal(t, now.Add(time.Second+cfg.Leaderless), due, "decided again when the leader key has been gone long enough")
	_, on, _, ev = decideHold("pg-test", &leaderless, gone, true, cfg, now.Add(time.Second+cfg.Leaderless), facts)
	assert.False(t, on)
	if assert.NotNil(t, ev) {
		assert.Equal(t, holdLeaderless, ev.Result)
	}
	back, on, _, _ := decideHold("pg-test", requested, gone, true, cfg, now.Add(2*time.Second), facts)
	assert.True(t, on)
	assert.True(t, back.leaderGone.IsZero())
}

// hold_from: before_stop: a request arms the hold; it starts on Patroni's
// before_stop word for that request and leader, or when the leader key
// leaves the old leader (no hook); a request cleared while armed, or a
// before_stop word for another request or member, starts nothing.
func TestDecideArmedHold(t *testing.T) {
	cfg := HoldConfig{Enabled: true, Max: 5 * time.Second, Leaderless: 2 * time.Second, AtStop: true}
	now := time.Now()
	facts := holdFacts{holdable: true}
	requested := func() *dcs.Cluster {
		return &dcs.Cluster{Leader: "pg-test-1", LeaderTerm: 10, Config: &dcs.Config{},
			Members:  map[string]selector.Member{"pg-test-1": {Role: "primary", State: "running"}, "pg-test-2": {Role: "replica", State: "running"}},
			Failover: &dcs.Failover{Leader: "pg-test-1", Member: "pg-test-2", Revision: 11}}
	}
	armed, on, due, ev := decideHold("pg-test", requested(), nil, true, cfg, now, facts)
	assert.False(t, on, "a request alone does not hold")
	assert.Nil(t, ev)
	assert.True(t, due.IsZero(), "nothing is due while armed")
	if assert.NotNil(t, armed) {
		assert.True(t, armed.armed)
	}
	for _, tc := range []struct {
		name   string
		change func(dc *dcs.Cluster)
		holds  bool
		kept   bool // the armed record stays
	}{
		{"still armed", func(dc *dcs.Cluster) {}, false, true},
		{"before_stop for this request", func(dc *dcs.Cluster) { dc.Stopping = &dcs.Stop{Leader: "pg-test-1", Request: 11} }, true, true},
		{"before_stop for an earlier request", func(dc *dcs.Cluster) { dc.Stopping = &dcs.Stop{Leader: "pg-test-1", Request: 7} }, false, true},
		{"before_stop of another member", func(dc *dcs.Cluster) { dc.Stopping = &dcs.Stop{Leader: "pg-test-3", Request: 11} }, false, true},
		{"leader key released without a hook", func(dc *dcs.Cluster) { dc.Leader, dc.LeaderTerm = "", 0 }, true, true},
		{"new leader without a hook", func(dc *dcs.Cluster) { dc.Leader, dc.LeaderTerm = "pg-test-2", 12 }, true, true},
		{"request cleared before the stop", func(dc *dcs.Cluster) { dc.Failover = nil }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc := requested()
			tc.change(dc)
			h, on, _, ev := decideHold("pg-test", dc, armed, true, cfg, now.Add(100*time.Millisecond), facts)
			assert.Equal(t, tc.holds, on)
			assert.Equal(t, tc.kept, h != nil)
			if tc.holds {
				if assert.NotNil(t, ev) {
					assert.True(t, ev.Started)
				}
				assert.False(t, h.armed)
				assert.Equal(t, now.Add(100*time.Millisecond), h.started, "hold_max counts from the start, not the request")
			} else {
				assert.Nil(t, ev, "an armed hold that never held reports nothing")
			}
		})
	}

	off := cfg
	off.Enabled = false
	h, on, _, _ := decideHold("pg-test", requested(), armed, true, off, now, facts)
	assert.False(t, on)
	assert.Nil(t, h, "holding turned off drops the armed hold")
}

// A one-shot pass leaves a held frontend alone while a switchover may be
// under way: Patroni clears the failover key when the candidate takes the
// leader key, before its promotion ends.
func TestSwitchoverUnderWay(t *testing.T) {
	now := time.Now()
	members := func(role string) map[string]selector.Member {
		return map[string]selector.Member{"pg-test-2": {Role: role, State: "running"}}
	}
	for _, tc := range []struct {
		name string
		dc   *dcs.Cluster
		want bool
	}{
		{"requested", &dcs.Cluster{Leader: "pg-test-1", Config: &dcs.Config{}, Members: members("replica"),
			Failover: &dcs.Failover{Leader: "pg-test-1", Member: "pg-test-2", Revision: 3}}, true},
		{"scheduled later", &dcs.Cluster{Leader: "pg-test-2", Config: &dcs.Config{}, Members: members("primary"),
			Failover: &dcs.Failover{Leader: "pg-test-2", Member: "pg-test-1", ScheduledAt: now.Add(time.Hour), Revision: 3}}, false},
		{"request cleared, new leader not promoted yet", &dcs.Cluster{Leader: "pg-test-2", Config: &dcs.Config{}, Members: members("replica")}, true},
		{"no leader key", &dcs.Cluster{Config: &dcs.Config{}, Members: members("replica")}, true},
		{"the leader is primary by its own key", &dcs.Cluster{Leader: "pg-test-2", Config: &dcs.Config{}, Members: members("primary")}, false},
		{"a standby cluster's leader", &dcs.Cluster{Leader: "pg-test-2", Config: &dcs.Config{Standby: true}, Members: members("standby_leader")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, switchoverUnderWay(tc.dc, now)) })
	}
}
