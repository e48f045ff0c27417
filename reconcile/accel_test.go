package reconcile

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// accelCluster is pg-test with three members, in inventory order.
func accelCluster(t *testing.T) *selector.Cluster {
	t.Helper()
	inv, err := selector.ParseInventory("inv.yml", []byte("all:\n  children:\n    pg-test:\n      hosts:\n"+
		"        10.0.0.1: { pg_seq: 1, pg_role: primary }\n        10.0.0.2: { pg_seq: 2, pg_role: replica }\n"+
		"        10.0.0.3: { pg_seq: 3, pg_role: replica }\n      vars: { pg_cluster: pg-test }\n"))
	require.NoError(t, err)
	m, err := selector.NewModel(inv)
	require.NoError(t, err)
	return m.Clusters[0]
}

// keys is what etcd holds of pg-test: the leader key (holder and create
// revision, "" for none), the config key and the member keys present, as
// "role/state" by member number.
type keys struct {
	leader  string
	term    int64
	config  *dcs.Config // nil: no config key
	members map[int]string
}

var primaryCluster, standbyCluster = &dcs.Config{}, &dcs.Config{Standby: true}

func (k keys) cluster() *dcs.Cluster {
	dc := &dcs.Cluster{Leader: k.leader, LeaderTerm: k.term, Config: k.config, Members: map[string]selector.Member{}}
	for n, rs := range k.members {
		role, state, _ := strings.Cut(rs, "/")
		dc.Members[selector.InstanceName("pg-test", strconv.Itoa(n))] = selector.Member{Role: role, State: state}
	}
	return dc
}

// steady is pg-test led by member 1, in the leader term created at term.
func steady(term int64) keys {
	return keys{leader: "pg-test-1", term: term, config: primaryCluster, members: map[int]string{1: "master/running", 2: "replica/running", 3: "replica/running"}}
}

// What decideAccel forces, step by step, from the facts in etcd and what
// it acted on before. Each case starts with pgsvc's first sight of a
// steady cluster (nothing forced, the leader passed on for new workers).
func TestDecideAccel(t *testing.T) {
	type step struct {
		keys keys
		want Accel
	}
	leads := func(k keys) Accel { return Accel{Leader: k.leader, LeaderTerm: k.term} }
	s10 := steady(10)
	cases := []struct {
		name  string
		steps []step
	}{
		{"a resync of the same facts forces nothing", []step{{s10, leads(s10)}}},
		{"a different member holds the leader key: the others down, it up", []step{
			{keys{"pg-test-2", 20, primaryCluster, map[int]string{1: "master/running", 2: "replica/running", 3: "replica/running"}},
				Accel{Down: []string{"pg-test-1", "pg-test-3"}, Up: "pg-test-2", Leader: "pg-test-2", LeaderTerm: 20}},
			// The same term again (a retry, a resync, its member key
			// rewritten): nothing is forced twice.
			{keys{"pg-test-2", 20, primaryCluster, map[int]string{1: "replica/running", 2: "master/running", 3: "replica/running"}},
				Accel{Leader: "pg-test-2", LeaderTerm: 20}},
		}},
		{"a different member holds the key, the old leader's key gone", []step{
			{keys{"pg-test-2", 20, primaryCluster, map[int]string{2: "replica/running", 3: "replica/running"}},
				Accel{Down: []string{"pg-test-1", "pg-test-3"}, Up: "pg-test-2", Leader: "pg-test-2", LeaderTerm: 20}},
		}},
		{"leader key released, own key demoted", []step{
			{keys{"", 0, primaryCluster, map[int]string{1: "demoted/stopping", 2: "replica/running", 3: "replica/running"}}, Accel{Down: []string{"pg-test-1"}}},
		}},
		{"leader key released, own key stopped", []step{
			{keys{"", 0, primaryCluster, map[int]string{1: "master/stopped", 2: "replica/running", 3: "replica/running"}}, Accel{Down: []string{"pg-test-1"}}},
		}},
		{"leader key released, own key replica", []step{
			{keys{"", 0, primaryCluster, map[int]string{1: "replica/running", 2: "replica/running", 3: "replica/running"}}, Accel{Down: []string{"pg-test-1"}}},
		}},
		{"leader key released, own key crashed", []step{
			{keys{"", 0, primaryCluster, map[int]string{1: "master/crashed", 2: "replica/running", 3: "replica/running"}}, Accel{Down: []string{"pg-test-1"}}},
		}},
		{"leader key released, own key still primary: no evidence", []step{
			{keys{"", 0, primaryCluster, map[int]string{1: "master/running", 2: "replica/running", 3: "replica/running"}}, Accel{}},
		}},
		{"absent keys are no evidence: leader and member key expire together", []step{
			{keys{"", 0, primaryCluster, map[int]string{2: "replica/running", 3: "replica/running"}}, Accel{}},
			{keys{"", 0, primaryCluster, map[int]string{}}, Accel{}},
			{keys{"", 0, nil, nil}, Accel{}},
		}},
		{"a new term by create revision, same leader: a new lease after a blip", []step{
			{keys{"", 0, primaryCluster, map[int]string{2: "replica/running", 3: "replica/running"}}, Accel{}},
			{steady(30), Accel{Down: []string{"pg-test-2", "pg-test-3"}, Up: "pg-test-1", Leader: "pg-test-1", LeaderTerm: 30}},
			{steady(30), leads(steady(30))},
		}},
		{"a new term without the blip in between", []step{
			{steady(30), Accel{Down: []string{"pg-test-2", "pg-test-3"}, Up: "pg-test-1", Leader: "pg-test-1", LeaderTerm: 30}},
		}},
		{"standby cluster: the new leader is never forced up", []step{
			{keys{"pg-test-2", 20, standbyCluster, map[int]string{1: "replica/running", 2: "replica/running", 3: "replica/running"}},
				Accel{Down: []string{"pg-test-1", "pg-test-3"}}},
			{keys{"pg-test-2", 20, standbyCluster, map[int]string{1: "replica/running", 2: "standby_leader/running", 3: "replica/running"}}, Accel{}},
		}},
		{"no config key: not known to be a primary cluster, nothing forced up", []step{
			{keys{"pg-test-2", 20, nil, map[int]string{1: "replica/running", 2: "master/running", 3: "replica/running"}},
				Accel{Down: []string{"pg-test-1", "pg-test-3"}}},
		}},
		{"the new leader's key not running yet: not forced up", []step{
			{keys{"pg-test-2", 20, primaryCluster, map[int]string{1: "replica/running", 2: "replica/starting", 3: "replica/running"}},
				Accel{Down: []string{"pg-test-1", "pg-test-3"}, Leader: "pg-test-2", LeaderTerm: 20}},
		}},
		// No stale memo: a member forced down, then leading again in a new
		// term, is forced down again when a later fact says it stopped
		// being primary (the memo of the first forcing must not hide it).
		{"forced down, leads again, then switches over", []step{
			{keys{"", 0, primaryCluster, map[int]string{1: "demoted/stopped", 2: "replica/running", 3: "replica/running"}}, Accel{Down: []string{"pg-test-1"}}},
			{keys{"", 0, primaryCluster, map[int]string{1: "master/running", 2: "replica/running", 3: "replica/running"}}, Accel{}},
			{steady(30), Accel{Down: []string{"pg-test-2", "pg-test-3"}, Up: "pg-test-1", Leader: "pg-test-1", LeaderTerm: 30}},
			{keys{"", 0, primaryCluster, map[int]string{1: "master/running", 2: "replica/running", 3: "replica/running"}}, Accel{}},
			{keys{"", 0, primaryCluster, map[int]string{1: "demoted/stopping", 2: "replica/running", 3: "replica/running"}}, Accel{Down: []string{"pg-test-1"}}},
			{keys{"pg-test-2", 40, primaryCluster, map[int]string{1: "demoted/stopped", 2: "replica/running", 3: "replica/running"}},
				Accel{Down: []string{"pg-test-1", "pg-test-3"}, Up: "pg-test-2", Leader: "pg-test-2", LeaderTerm: 40}},
			{keys{"pg-test-2", 40, primaryCluster, map[int]string{1: "replica/running", 2: "master/running", 3: "replica/running"}},
				Accel{Leader: "pg-test-2", LeaderTerm: 40}},
		}},
	}
	c := accelCluster(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first, prev := decideAccel(c, s10.cluster(), forcing{}, false)
			require.Equal(t, leads(s10), first, "first sight forces nothing")
			for i, st := range tc.steps {
				var got Accel
				got, prev = decideAccel(c, st.keys.cluster(), prev, true)
				require.Equal(t, st.want, got, "step %d: %+v", i+1, st.keys)
			}
		})
	}
}
