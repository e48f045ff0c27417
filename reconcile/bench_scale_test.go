package reconcile_test

import (
	"context"
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
	hap := local.NewHAProxy(b)
	inv := filepath.Join(b.TempDir(), "inventory.yml")
	require.NoError(b, os.WriteFile(inv, gen.ProxyInventory(clusters, 20000), 0o644))
	m, err := selector.Load(inv)
	require.NoError(b, err)
	d, err := reconcile.Compute(m.Clusters, reconcile.Live{}, true)
	require.NoError(b, err)
	files, err := dataplaneapi.Files(&d)
	require.NoError(b, err)
	_, err = dataplaneapi.WriteFiles(hap.ConfDir, files)
	require.NoError(b, err)
	require.NoError(b, dataplaneapi.WriteFingerprint(hap.ConfDir, nil))
	hap.Single = true // see local.HAProxy.Single: 4,000 files break 2.6's master re-exec
	hap.Start()

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
