package reconcile

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/fixtures/gen"
	"github.com/pgsvc/pgsvc/selector"
)

const benchClusters = 1000

func benchModel(b *testing.B) *selector.Model {
	b.Helper()
	inv, err := selector.ParseInventory("generated.yml", gen.Inventory(benchClusters))
	require.NoError(b, err)
	m, err := selector.NewModel(inv)
	require.NoError(b, err)
	return m
}

// liveFailover is a live view where every cluster's second instance leads.
func liveFailover(m *selector.Model) Live {
	l := Live{Clusters: map[string]selector.ClusterLive{}}
	for _, c := range m.Clusters {
		l.Clusters[c.Name] = selector.ClusterLive{Leader: c.Name + "-2", Members: map[string]selector.Member{
			c.Name + "-2": {Role: "master", State: "running"},
		}}
	}
	return l
}

// BenchmarkDesired is one full desired-state computation: every selector of
// every service of 1,000 clusters (3-5 instances, four default services),
// against a live view where every cluster failed over.
func BenchmarkDesired(b *testing.B) {
	m := benchModel(b)
	live := liveFailover(m)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := Compute(m.Clusters, live, false)
		if err != nil || len(d.Services) != 4*benchClusters {
			b.Fatalf("compute: %v (%d services)", err, len(d.Services))
		}
	}
}

// BenchmarkLoadComputeDiff is the whole offline pipeline short of writing:
// parse and validate the 1,000-cluster inventory, compute static and live
// desired states, diff them.
func BenchmarkLoadComputeDiff(b *testing.B) {
	data := gen.Inventory(benchClusters)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv, err := selector.ParseInventory("generated.yml", data)
		if err != nil {
			b.Fatal(err)
		}
		m, err := selector.NewModel(inv)
		if err != nil {
			b.Fatal(err)
		}
		static, err := Compute(m.Clusters, Live{}, false)
		if err != nil {
			b.Fatal(err)
		}
		live, err := Compute(m.Clusters, liveFailover(m), false)
		if err != nil {
			b.Fatal(err)
		}
		if Diff(static, live).Empty() {
			b.Fatal("failover of every cluster planned nothing")
		}
	}
}

func TestGeneratedInventoryIsValid(t *testing.T) {
	inv, err := selector.ParseInventory("generated.yml", gen.Inventory(30))
	require.NoError(t, err)
	m, err := selector.NewModel(inv)
	require.NoError(t, err)
	require.Len(t, m.Clusters, 30)
	d, err := Compute(m.Clusters, Live{}, false)
	require.NoError(t, err)
	var buf bytes.Buffer
	for _, s := range d.Services[:4] {
		fmt.Fprintln(&buf, s.Name, len(s.Servers))
	}
	require.Equal(t, "pg-c0-default 3\npg-c0-offline 3\npg-c0-primary 3\npg-c0-replica 3\n", buf.String())
}
