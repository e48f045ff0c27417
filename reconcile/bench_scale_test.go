package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/fixtures/gen"
	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// BenchmarkLeaderChange1000 serves 1,000 clusters (3-5 instances, four
// services, 4,000 backends, ~32,000 slots) from one real HAProxy 2.6 and
// switches over one cluster per iteration, replaying Patroni's writes. It
// reports the runtime commands issued and the time from the first write to
// the last command of the switchover, and fails if any command touches
// another cluster.
func BenchmarkLeaderChange1000(b *testing.B) {
	const clusters = 1000
	etcd := local.StartEtcd(b)
	cli := etcd.Client()
	defer cli.Close()
	hap, m := serveFleet(b, clusters)

	c := m.Clusters[7]
	addrs := map[string]string{}
	var names []string
	for _, h := range c.Members {
		n := selector.InstanceName(c.Name, selector.Seq(h.Vars))
		addrs[n] = h.Name
		names = append(names, n)
	}
	patroni := local.NewPatroni(b, cli, "/pg/", c.Name, addrs)
	patroni.Steady(names[0], names...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	in := reconcile.NewInputs("", nil)
	require.NoError(b, in.SetModel(m))
	rt, err := dataplaneapi.NewRuntime(ctx, hap.StatsSocket)
	require.NoError(b, err)
	ecli, err := reconcile.NewEtcdClient(reconcile.EtcdConfig{Endpoints: []string{etcd.Endpoint}})
	require.NoError(b, err)
	defer ecli.Close()
	obs := newObserver()
	rec := &reconcile.Reconciler{In: in, Log: log, Observer: obs,
		HAProxy: &dataplaneapi.Syncer{Runtime: rt, Config: &dataplaneapi.ConfigDir{Dir: hap.ConfDir, MainConfig: hap.GlobalConfig}}}
	go func() { _ = (&reconcile.EtcdSource{Client: ecli, Layout: dcs.DefaultLayout(), Log: log}).Run(ctx, in) }()
	go func() { _ = rec.Run(ctx) }()
	first, err := obs.wait(func(p reconcile.PassInfo) bool { return p.Err == nil && p.Full }, 60*time.Second)
	require.NoError(b, err)
	b.Logf("first full pass over %d clusters: %s, %d commands", clusters, first.Duration, len(first.Report.Commands))

	var total time.Duration
	var cmds int
	leader := names[0]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := names[1]
		if leader == names[1] {
			next = names[0]
		}
		n := obs.count()
		start := time.Now()
		rev := patroni.Switchover(leader, next)
		p, err := obs.waitFrom(n, func(p reconcile.PassInfo) bool { return p.Err == nil && p.Revision >= rev }, 30*time.Second)
		require.NoError(b, err)
		end := p.Report.RuntimeDone
		obs.mu.Lock()
		for _, q := range obs.passes[n:] {
			for _, cmd := range q.Report.Commands {
				if !strings.HasPrefix(cmd.Service, c.Name+"-") {
					b.Fatalf("switchover of %s touched %s: %s", c.Name, cmd.Service, cmd.Line)
				}
				cmds++
			}
			if q.Report.RuntimeDone.After(end) {
				end = q.Report.RuntimeDone
			}
		}
		obs.mu.Unlock()
		total += end.Sub(start)
		leader = next
	}
	b.StopTimer()
	b.ReportMetric(float64(cmds)/float64(b.N), "cmds/switchover")
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/switchover")
}

// serveFleet starts one real HAProxy 2.6 serving the rendered files of a
// generated fleet of n clusters (3-5 instances, four services each).
func serveFleet(b *testing.B, n int) (*local.HAProxy, *selector.Model) {
	b.Helper()
	hap := local.NewHAProxy(b)
	inv := filepath.Join(b.TempDir(), "inventory.yml")
	require.NoError(b, os.WriteFile(inv, gen.ProxyInventory(n, 20000), 0o644))
	m, err := selector.Load(inv)
	require.NoError(b, err)
	d, err := reconcile.Compute(m.Clusters, reconcile.Live{}, true)
	require.NoError(b, err)
	files, err := dataplaneapi.Files(&d, dataplaneapi.LayoutService)
	require.NoError(b, err)
	_, err = dataplaneapi.WriteFiles(hap.ConfDir, files)
	require.NoError(b, err)
	require.NoError(b, dataplaneapi.WriteFingerprint(hap.ConfDir, nil, ""))
	hap.Single = true // see local.HAProxy.Single: 4,000 files break 2.6's master re-exec
	hap.Start()
	return hap, m
}

// BenchmarkSyncer1000 measures the syncer alone (no etcd) against one real
// HAProxy 2.6 serving 1,000 clusters (4,000 backends, ~32,000 slots):
//   - read-all: reading every backend's servers (two dumps, ~8 MB);
//   - converged-full-pass: a full pass that finds nothing to do (reads,
//     plans, renders and compares every file, checks the fingerprint);
//   - switchover-all: every cluster's leader moves at once, applied and
//     read back in one pass (a mass event: a fleet-wide switchover, or
//     the pass after etcd returns); runtime-ms/op is the time until
//     HAProxy shows every change, ns/op includes rewriting the files.
func BenchmarkSyncer1000(b *testing.B) {
	const clusters = 1000
	hap, m := serveFleet(b, clusters)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := dataplaneapi.NewRuntime(ctx, hap.StatsSocket)
	require.NoError(b, err)
	s := &dataplaneapi.Syncer{Runtime: rt, Config: &dataplaneapi.ConfigDir{Dir: hap.ConfDir, MainConfig: hap.GlobalConfig}}

	// leading computes the desired state and forcing when member seq of
	// every cluster leads (after a switchover from the other one).
	leading := func(seq, from int) ([]reconcile.Service, map[string]reconcile.Accel) {
		live := reconcile.Live{Clusters: map[string]selector.ClusterLive{}}
		accel := map[string]reconcile.Accel{}
		for _, c := range m.Clusters {
			leader := fmt.Sprintf("%s-%d", c.Name, seq)
			live.Clusters[c.Name] = selector.ClusterLive{Leader: leader, Members: map[string]selector.Member{
				leader: {Role: "primary", State: "running"}}}
			a := reconcile.Accel{Leader: leader}
			if from > 0 {
				a.Down, a.Up = []string{fmt.Sprintf("%s-%d", c.Name, from)}, leader
			}
			accel[c.Name] = a
		}
		d, err := reconcile.Compute(m.Clusters, live, true)
		require.NoError(b, err)
		return d.Services, accel
	}
	apply := func(services []reconcile.Service, accel map[string]reconcile.Accel) reconcile.Report {
		rep, err := s.Apply(ctx, services, nil, accel, false)
		require.NoError(b, err)
		return rep
	}
	one, oneAccel := leading(1, 0)
	first := time.Now()
	rep := apply(one, oneAccel)
	b.Logf("first full pass over %d clusters: %s, %d commands, %d files written", clusters, time.Since(first), len(rep.Commands), len(rep.Written))

	b.Run("read-all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			all, err := rt.AllBackends(ctx)
			require.NoError(b, err)
			require.Len(b, all, 4*clusters)
		}
	})
	b.Run("converged-full-pass", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if rep := apply(one, oneAccel); len(rep.Commands)+len(rep.Written)+len(rep.Reload) > 0 {
				b.Fatalf("a converged pass changed something: %d commands, files %v, reload %v", len(rep.Commands), rep.Written, rep.Reload)
			}
		}
	})
	b.Run("switchover-all", func(b *testing.B) {
		two, twoAccel := leading(2, 1)
		back, backAccel := leading(1, 2)
		var cmds int
		var runtime time.Duration
		for i := 0; i < b.N; i++ {
			services, accel := two, twoAccel
			if i%2 == 1 {
				services, accel = back, backAccel
			}
			start := time.Now()
			rep := apply(services, accel)
			runtime += rep.RuntimeDone.Sub(start)
			touched := map[string]bool{}
			for _, c := range rep.Commands {
				touched[c.Cluster] = true
			}
			if len(touched) != clusters {
				b.Fatalf("switchover-all touched %d of %d clusters", len(touched), clusters)
			}
			cmds += len(rep.Commands)
		}
		b.ReportMetric(float64(cmds)/float64(b.N), "cmds/op")
		// Traffic has moved (applied and read back) at RuntimeDone; the
		// rest of the pass rewrites the files a restart would load.
		b.ReportMetric(float64(runtime.Microseconds())/1000/float64(b.N), "runtime-ms/op")
		if b.N%2 == 1 { // leave every cluster led by its first member
			apply(back, backAccel)
		}
	})
}
