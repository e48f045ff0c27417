package reconcile_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/pgsvc/pgsvc/reconcile"
)

// BenchmarkEventToHAProxy measures etcd write -> HAProxy state changed with
// a real etcd 3.4 and a real HAProxy 2.6 on loopback: each iteration writes
// one override (pg_weight of pg-test-2 alternating 20/30, as `pgsvc set`
// would) and waits for the pass that applied it; the latency ends when
// HAProxy acknowledged the last runtime command. Run with -benchtime 200x.
func BenchmarkEventToHAProxy(b *testing.B) {
	l := newLab(b, labOptions{})
	var lat []time.Duration
	var cmds int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		value := fmt.Sprintf(`{"pg_weight":%d}`, 20+10*(i%2))
		start := time.Now()
		put, err := l.cli.Put(context.Background(), "/pgsvc/overrides/pg-test-2", value)
		if err != nil {
			b.Fatal(err)
		}
		p, err := l.obs.wait(func(p reconcile.PassInfo) bool { return p.Err == nil && p.Revision >= put.Header.Revision }, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Report.Commands) == 0 {
			b.Fatalf("event %d applied nothing", i)
		}
		cmds += len(p.Report.Commands)
		lat = append(lat, p.Report.RuntimeDone.Sub(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
	b.ReportMetric(float64(cmds)/float64(b.N), "cmds/event")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.Logf("%d events: p50 %s p99 %s max %s", len(lat), q(0.50), q(0.99), lat[len(lat)-1])
}
