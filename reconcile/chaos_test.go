package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
)

// tee feeds passes to the test's observer and to the metrics.
type tee struct {
	a, b reconcile.Observer
}

// Pass feeds b (metrics) before a (the observer tests wait on), so a test
// woken by a pass reads metrics that already include it.
func (t tee) Pass(p reconcile.PassInfo) { t.b.Pass(p); t.a.Pass(p) }

func (t tee) Desired(s []reconcile.Service) { t.a.Desired(s); t.b.Desired(s) }

// TestChaos streams Patroni and override events while etcd is killed and
// restarted, HAProxy is killed and restarted from its files, and garbage
// overrides are written. At the end HAProxy equals the desired state,
// nothing crashed, and the counters tell what happened.
func TestChaos(t *testing.T) {
	l := newLab(t, labOptions{noStart: true})
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, src *reconcile.EtcdSource) {
		rec.Observer = tee{l.obs, m}
		rec.Resync = 500 * time.Millisecond
		src.Error, src.Ready = m.EtcdError, m.EtcdReady
	})

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	wg.Add(1)
	go func() { // the event stream: weights and offline flags, as `pgsvc set` writes them
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			inst := fmt.Sprintf("pg-test-%d", 2+i%2)
			value := fmt.Sprintf(`{"pg_weight":%d,"pg_offline_query":%v}`, 10+i%50, i%3 == 0)
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			if _, err := l.cli.Put(cctx, "/pgsvc/overrides/"+inst, value); err == nil {
				mu.Lock()
				written++
				mu.Unlock()
			}
			cancel()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	garbage := func(value string) {
		// Right after an etcd restart the client's reconnect backoff (it
		// grows with each failed attempt of the outage, to seconds on a
		// loaded machine) comes before the write: wait it out.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := l.cli.Put(cctx, "/pgsvc/overrides/pg-test-1", value)
		require.NoError(t, err)
	}
	time.Sleep(500 * time.Millisecond)
	garbage(`{"pg_weight": 9000}`)
	garbage(`not json at all`)
	garbage(`{"pg_seq": 7}`)

	l.etcd.Stop()
	require.Eventually(t, func() bool { _, ready, _ := l.in.Status(); return !ready }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)
	l.etcd.Start()
	l.hap.Restart()
	time.Sleep(time.Second)
	l.patroni.Switchover("pg-test-1", "pg-test-2")
	l.etcd.Stop()
	time.Sleep(500 * time.Millisecond)
	l.etcd.Start()
	garbage(`{"pg_role": "primary"}`)
	time.Sleep(time.Second)
	stop()
	wg.Wait()

	// Let the daemon settle on the final state, then compare with a fresh,
	// independent one-shot reconcile: nothing may be left to do.
	// The first full pass may be the retry of one that HAProxy's restart
	// failed (the retries wait behind a backoff), repairing what the
	// restart lost; the one after it must find nothing to repair.
	for i := 0; i < 2; i++ {
		n := l.obs.count()
		l.in.MarkAll(reconcile.CauseResync)
		_, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Full }, 30*time.Second)
		require.NoError(t, err, "the daemon still runs and converges")
	}
	rep := l.oneShot(true)
	assert.True(t, rep.Empty(), "HAProxy equals the desired state: %+v", rep)
	assert.Equal(t, "pg-test-1 pg-test-2.b pg-test-3", l.enabled("replica"), "the switchover is in force")

	ok := counter(t, m, `pgsvc_reconcile_passes_total{result="ok",scope="full"}`)
	etcdErrors := counter(t, m, `pgsvc_errors_total{source="etcd"}`)
	assert.Positive(t, ok)
	assert.GreaterOrEqual(t, etcdErrors, 4.0, "two etcd outages and four garbage overrides were counted")
	assert.Equal(t, 1.0, counter(t, m, "pgsvc_etcd_connected"))
	assert.Equal(t, 0.0, counter(t, m, "pgsvc_drift_servers"))
	assert.Contains(t, l.logs.String(), "ignored malformed value: the key counts as absent")
	t.Logf("%d override events written; passes %v; etcd errors %v; repairs after HAProxy restart %v",
		written, ok, etcdErrors, counter(t, m, "pgsvc_resync_repairs_total"))
}

// counter reads one sample from the registry's text exposition.
func counter(t *testing.T, m *metrics.Metrics, sample string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	name, labels, _ := strings.Cut(sample, "{")
	labels = strings.TrimSuffix(labels, "}")
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var pairs []string
			for _, lp := range mt.GetLabel() {
				pairs = append(pairs, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			if strings.Join(pairs, ",") != labels {
				continue
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no sample %s", sample)
	return 0
}
