package dcs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/selector"
)

func load(t *testing.T, name string) *State {
	t.Helper()
	st, err := LoadSnapshot("../../fixtures/patroni/"+name, DefaultLayout())
	require.NoError(t, err)
	return st
}

// Snapshots recorded from real Patroni 3.0.2 (etcd 3.4, bookworm) and 4.0.7
// (etcd 3.5, trixie) clusters: fixtures/patroni/README.md.
func TestRecordedSnapshots(t *testing.T) {
	tests := []struct {
		file, leader string
		roles        map[string]string
		states       map[string]string
	}{
		{"p3-steady.json", "pg-test-1", map[string]string{"pg-test-1": "master", "pg-test-2": "replica", "pg-test-3": "replica"}, nil},
		{"p3-switchover.json", "pg-test-2", map[string]string{"pg-test-1": "replica", "pg-test-2": "master", "pg-test-3": "replica"}, nil},
		{"p3-stopped-member.json", "pg-test-2", nil, map[string]string{"pg-test-3": "stopped", "pg-test-2": "running"}},
		{"p3-no-leader.json", "", map[string]string{"pg-test-1": "replica", "pg-test-3": "replica"}, nil},
		{"p3-crash-failover.json", "pg-test-3", map[string]string{"pg-test-3": "master", "pg-test-1": "replica"}, map[string]string{"pg-test-2": ""}},
		{"p4-steady.json", "pg-test-1", map[string]string{"pg-test-1": "primary", "pg-test-2": "replica", "pg-test-3": "replica"}, nil},
		{"p4-switchover.json", "pg-test-2", map[string]string{"pg-test-1": "replica", "pg-test-2": "primary", "pg-test-3": "replica"}, nil},
		{"p4-stopped-member.json", "pg-test-2", nil, map[string]string{"pg-test-3": "stopped", "pg-test-2": "running"}},
		{"p4-no-leader.json", "", map[string]string{"pg-test-1": "replica", "pg-test-3": "replica"}, nil},
		{"p4-crash-failover.json", "pg-test-1", map[string]string{"pg-test-1": "primary", "pg-test-3": "replica"}, map[string]string{"pg-test-2": ""}},
		{"p4-failsafe.json", "pg-test-1", map[string]string{"pg-test-1": "primary", "pg-test-3": "replica"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			st := load(t, tc.file)
			require.Equal(t, []string{"pg-test"}, st.Scopes())
			c := st.Clusters["pg-test"]
			assert.Equal(t, tc.leader, c.Leader)
			assert.Equal(t, tc.leader, ResolveLeader(c))
			for name, role := range tc.roles {
				assert.Equal(t, role, c.Members[name].Role, name)
			}
			for name, state := range tc.states {
				m, ok := c.Members[name]
				if state == "" {
					assert.False(t, ok, "%s: no member key", name)
					continue
				}
				require.True(t, ok, name)
				assert.Equal(t, state, m.State, name)
			}
			assert.Positive(t, st.Revision)
		})
	}
}

func TestParseHistory(t *testing.T) {
	tests := []struct {
		name, value, want, err string
	}{
		{"recorded from Patroni 3.0.2", `[[1,67109256,"no recovery target specified","2026-11-21T00:46:16.427161+00:00","pg-test-2"],[2,67109536,"no recovery target specified","2026-11-21T00:48:31.459164+00:00","pg-test-3"]]`, "pg-test-3", ""},
		{"no promotion yet", `[]`, "", ""},
		{"entries without the new leader (old Patroni)", `[[1,25165984,"no recovery target specified","2019-01-01T00:00:00+00:00"]]`, "", ""},
		{"null new leader", `[[1,1,"r","t",null]]`, "", ""},
		{"not JSON", `pg-test-2`, "", "not Patroni history JSON (a list of [timeline, lsn, reason, timestamp, new_leader]): invalid character 'p' looking for beginning of value"},
		{"an object", `{"leader":"pg-test-2"}`, "", "not Patroni history JSON (a list of [timeline, lsn, reason, timestamp, new_leader]): the document is an object, want a list (at byte 1)"},
		{"new leader not a name", `[[1,1,"r","t",7]]`, "", "history entry 1: new_leader is 7, not a member name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHistory([]byte(tc.value))
			if tc.err != "" {
				assert.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestLiveFallsBackToHistory: recorded after pg-test-2, the primary, was
// stopped for good: its leader and member keys are gone and no member
// claims primary. Without a memory (pgsvc just started) the history still
// names it, so the routing of the last known primary stands; a memory of a
// later leader wins over it.
func TestLiveFallsBackToHistory(t *testing.T) {
	st := load(t, "p3-no-leader.json")
	assert.Equal(t, "pg-test-2", st.Clusters["pg-test"].Promoted)
	assert.Equal(t, "pg-test-2", st.Live(nil)["pg-test"].Leader)
	assert.Equal(t, "pg-test-1", st.Live(map[string]string{"pg-test": "pg-test-1"})["pg-test"].Leader)
	st.Delete(DefaultLayout(), "/pg/pg-test/history")
	assert.Equal(t, "", st.Live(nil)["pg-test"].Leader, "nothing known: the inventory's roles stand")

	st = load(t, "p3-steady.json")
	assert.Equal(t, "", st.Clusters["pg-test"].Promoted, "a cluster never failed over has no history")
}

func TestResolveLeader(t *testing.T) {
	m := func(role, state string) selector.Member { return selector.Member{Role: role, State: state} }
	tests := []struct {
		name    string
		cluster Cluster
		want    string
	}{
		{"leader key wins", Cluster{Leader: "a", Members: map[string]selector.Member{"b": m("master", "running")}}, "a"},
		{"no key: the running master", Cluster{Members: map[string]selector.Member{"a": m("replica", "running"), "b": m("master", "running")}}, "b"},
		{"no key: Patroni 4 primary", Cluster{Members: map[string]selector.Member{"b": m("primary", "running")}}, "b"},
		{"no key: standby leader", Cluster{Members: map[string]selector.Member{"b": m("standby_leader", "running")}}, "b"},
		{"no key: promoted", Cluster{Members: map[string]selector.Member{"b": m("promoted", "running")}}, "b"},
		{"no key: a stopped master claims nothing", Cluster{Members: map[string]selector.Member{"b": m("master", "stopped")}}, ""},
		{"no key: two masters is ambiguous", Cluster{Members: map[string]selector.Member{"a": m("master", "running"), "b": m("primary", "running")}}, ""},
		{"nothing known", Cluster{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ResolveLeader(&tc.cluster))
		})
	}
}

func TestLiveKeepsLastLeader(t *testing.T) {
	st := load(t, "p3-switchover.json")
	last := map[string]string{}
	assert.Equal(t, "pg-test-2", st.Live(last)["pg-test"].Leader)
	assert.Equal(t, "pg-test-2", last["pg-test"])
	st.Delete(DefaultLayout(), "/pg/pg-test/leader")
	st.Delete(DefaultLayout(), "/pg/pg-test/members/pg-test-2")
	assert.Equal(t, "pg-test-2", st.Live(last)["pg-test"].Leader, "no leader key and no primary member: last known leader stays")
}

func TestPutAndDelete(t *testing.T) {
	l := Layout{Namespace: NormalizePrefix("//pg"), OverridePrefix: DefaultOverridePrefix}
	st := NewState()
	require.NoError(t, st.Put(l, "/pg/pg-a/leader", []byte("pg-a-1")))
	require.NoError(t, st.Put(l, "/pg/pg-a/members/pg-a-1", []byte(`{"role":"master","state":"running","tags":{"nofailover":true}}`)))
	require.NoError(t, st.Put(l, "/pg/pg-a/status", []byte(`not even json`)), "keys pgsvc does not use are ignored")
	require.NoError(t, st.Put(l, "/pg/pg-a/1/leader", []byte("citus group: ignored")))
	require.NoError(t, st.Put(l, "/pgsvc/overrides/pg-a-1", []byte(`{"pg_weight":20,"pg_offline_query":true}`)))
	assert.Equal(t, "pg-a-1", st.Clusters["pg-a"].Leader)
	assert.Equal(t, map[string]any{"nofailover": true}, st.Clusters["pg-a"].Members["pg-a-1"].Tags)
	assert.Equal(t, map[string]any{"pg_weight": int64(20), "pg_offline_query": true}, st.Overrides["pg-a-1"])

	require.NoError(t, st.Put(l, "/pg/pg-a/members/pg-a-2", []byte(`{"role":"replica","state":"running"}`)))
	err := st.Put(l, "/pg/pg-a/members/pg-a-2", []byte(`{"state":"running"}`))
	assert.EqualError(t, err, "patroni member /pg/pg-a/members/pg-a-2: member JSON has no role")
	assert.NotContains(t, st.Clusters["pg-a"].Members, "pg-a-2", "a malformed value is an absent key, as in a fresh list: the one before it is not kept")

	require.NoError(t, st.Put(l, "/pg/pg-a/history", []byte(`[[1,1,"r","t","pg-a-2"]]`)))
	assert.Equal(t, "pg-a-2", st.Clusters["pg-a"].Promoted)
	assert.EqualError(t, st.Put(l, "/pg/pg-a/history", []byte(`[[1,1,"r","t",2]]`)), "patroni history /pg/pg-a/history: history entry 1: new_leader is 2, not a member name")
	assert.Equal(t, "", st.Clusters["pg-a"].Promoted, "a bad history is an absent history")

	st.Delete(l, "/pg/pg-a/leader")
	st.Delete(l, "/pg/pg-a/history")
	st.Delete(l, "/pgsvc/overrides/pg-a-1")
	assert.Equal(t, "", st.Clusters["pg-a"].Leader)
	assert.Equal(t, "", st.Clusters["pg-a"].Promoted)
	assert.Empty(t, st.Overrides)
}

func TestOverrideValidation(t *testing.T) {
	tests := []struct {
		value, want string
	}{
		{`{"pg_weight":300}`, "pg_weight 300 is outside 0-256"},
		{`{"pg_weight":"heavy"}`, `pg_weight "heavy" is not a number`},
		{`{"pg_seq":4}`, "pg_seq identifies the instance and cannot be overridden"},
		{`{"pg_role":"primary"}`, "pg_role primary follows Patroni's leader and cannot be overridden"},
		{`{"pg_role":"boss"}`, "pg_role boss is not one of replica, standby, offline, delayed"},
		{`{"tags":{"a":1}}`, "tags: value must be a string, number, boolean or null"},
		{`[1,2]`, "not a JSON object of variables"},
		{`null`, "not a JSON object of variables: null"},
		{`{`, "not a JSON object of variables"},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			_, err := ParseOverride([]byte(tc.value))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseFailover(t *testing.T) {
	at := time.Date(2026, 12, 2, 18, 40, 24, 234274000, time.UTC)
	tests := []struct {
		name, value string
		want        *Failover
		err         string
	}{
		{"recorded from patronictl switchover (Patroni 3.0.2 and 4.0.7)", `{"leader":"pg-test-1","member":"pg-test-2"}`, &Failover{Leader: "pg-test-1", Member: "pg-test-2"}, ""},
		{"cleared by the new leader", `{}`, nil, ""},
		{"scheduled", `{"leader":"pg-test-1","member":"pg-test-2","scheduled_at":"2026-12-02T18:40:24.234274+00:00"}`, &Failover{Leader: "pg-test-1", Member: "pg-test-2", ScheduledAt: at}, ""},
		{"failover to a candidate", `{"member":"pg-test-3"}`, &Failover{Member: "pg-test-3"}, ""},
		{"legacy leader:candidate string", `pg-test-1:pg-test-2`, nil, "not Patroni failover JSON (an object with leader, member, scheduled_at): invalid character 'p' looking for beginning of value"},
		{"scheduled_at without a zone", `{"leader":"pg-test-1","scheduled_at":"2026-12-02T18:40:24"}`, nil, `failover scheduled_at "2026-12-02T18:40:24": not an ISO 8601 time with a zone`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFailover([]byte(tc.value))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// The failover key in the recorded switchovers: a request, then {} from the
// new leader, read like every other key (and forgotten when malformed).
func TestFailoverKeyInState(t *testing.T) {
	l := DefaultLayout()
	st := NewState()
	require.NoError(t, st.PutKV(l, KV{Key: "/pg/pg-test/failover", Value: []byte(`{"leader":"pg-test-1","member":"pg-test-2"}`), ModRevision: 26}))
	assert.Equal(t, &Failover{Leader: "pg-test-1", Member: "pg-test-2", Revision: 26}, st.Clusters["pg-test"].Failover)
	require.NoError(t, st.PutKV(l, KV{Key: "/pg/pg-test/failover", Value: []byte(`{}`), ModRevision: 34}))
	assert.Nil(t, st.Clusters["pg-test"].Failover)
	require.NoError(t, st.PutKV(l, KV{Key: "/pg/pg-test/failover", Value: []byte(`{"leader":"pg-test-2"}`), ModRevision: 40}))
	require.Error(t, st.PutKV(l, KV{Key: "/pg/pg-test/failover", Value: []byte(`[`), ModRevision: 41}))
	assert.Nil(t, st.Clusters["pg-test"].Failover, "a malformed value counts as absent")
	for _, f := range []string{"p3-switchover.json", "p4-switchover.json"} {
		assert.Nil(t, load(t, f).Clusters["pg-test"].Failover, "%s: cleared to {} after the switchover", f)
	}
}

// The before_stop key: a cluster's, parsed, forgotten when malformed or
// deleted; keys below a cluster and a layout without the prefix read none.
func TestStopKey(t *testing.T) {
	l := DefaultLayout()
	st := NewState()
	require.NoError(t, st.Put(l, "/pgsvc/stopping/pg-a", []byte(`{"leader":"pg-a-1","request":41}`)))
	assert.Equal(t, &Stop{Leader: "pg-a-1", Request: 41}, st.Clusters["pg-a"].Stopping)
	for _, bad := range []struct{ value, err string }{
		{`{"leader":"pg-a-1"}`, `before-stop /pgsvc/stopping/pg-a: before-stop value {"leader":"pg-a-1"}: want a leader and a positive request revision`},
		{`[1]`, "before-stop /pgsvc/stopping/pg-a: not pgsvc before-stop JSON (an object with leader, request):"},
	} {
		require.NoError(t, st.Put(l, "/pgsvc/stopping/pg-a", []byte(`{"leader":"pg-a-1","request":41}`)))
		err := st.Put(l, "/pgsvc/stopping/pg-a", []byte(bad.value))
		require.Error(t, err)
		assert.Contains(t, err.Error(), bad.err)
		assert.Nil(t, st.Clusters["pg-a"].Stopping, "a malformed value is an absent key")
	}
	require.NoError(t, st.Put(l, "/pgsvc/stopping/pg-a", []byte(`{"leader":"pg-a-1","request":41}`)))
	st.Delete(l, "/pgsvc/stopping/pg-a")
	assert.Nil(t, st.Clusters["pg-a"].Stopping)

	require.NoError(t, st.Put(l, "/pgsvc/stopping/pg-a/x", []byte(`garbage`)), "not a cluster's key: ignored")
	noStop := Layout{Namespace: DefaultNamespace, OverridePrefix: DefaultOverridePrefix}
	require.NoError(t, st.Put(noStop, "/pgsvc/stopping/pg-b", []byte(`garbage`)), "a layout without the prefix reads none")
	assert.NotContains(t, st.Clusters, "pg-b")
}

func TestFailoverDue(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		f    *Failover
		due  bool
	}{
		{"none", nil, false},
		{"at once", &Failover{Leader: "a"}, true},
		{"scheduled later", &Failover{Leader: "a", ScheduledAt: now.Add(time.Minute)}, false},
		{"scheduled now", &Failover{Leader: "a", ScheduledAt: now}, true},
	} {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.due, tc.f.Due(now)) })
	}
}
