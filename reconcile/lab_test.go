package reconcile_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// lab is one pgsvc daemon against a real etcd and a real HAProxy 2.6 on
// loopback, serving cluster pg-test (members 127.0.0.11-13).
type lab struct {
	t       testing.TB
	etcd    *local.Etcd
	cli     *clientv3.Client
	hap     *local.HAProxy
	members map[string]*local.Member
	patroni *local.Patroni
	invPath string
	ports   map[string]int // service -> bind port
	layout  dcs.Layout
	rt      *dataplaneapi.Runtime // the daemon's
	view    *dataplaneapi.Runtime // the test's own, outlives the daemon
	in      *reconcile.Inputs
	obs     *observer
	logs    *local.LogBuffer
	cancel  context.CancelFunc
	closeRT context.CancelFunc
	done    sync.WaitGroup
	hup     chan struct{}
	others  string // more clusters, YAML under all.children
	noWait  bool   // startWith returns before the first pass (etcd down at start-up)
}

type labOptions struct {
	services string // extra pg_services YAML lines
	clusters string // more clusters: YAML entries under all.children (4-space indent)
	noStart  bool
}

func newLab(t testing.TB, opts labOptions) *lab {
	t.Helper()
	l := &lab{t: t, members: map[string]*local.Member{}, ports: map[string]int{}, layout: dcs.DefaultLayout(), hup: make(chan struct{}, 1),
		others: opts.clusters}
	l.etcd = local.StartEtcd(t)
	l.cli = l.etcd.Client()
	t.Cleanup(func() { l.cli.Close() })
	addrs := map[string]string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("pg-test-%d", i)
		l.members[name] = local.StartMember(t, fmt.Sprintf("127.0.0.1%d", i), i == 1)
		addrs[name] = l.members[name].Addr
	}
	l.patroni = local.NewPatroni(t, l.cli, "/pg/", "pg-test", addrs)
	l.patroni.APIPorts = map[string]int{}
	for name, m := range l.members {
		l.patroni.APIPorts[name] = m.CheckPort
	}
	l.patroni.Steady("pg-test-1", "pg-test-1", "pg-test-2", "pg-test-3")
	for _, s := range []string{"primary", "replica", "default", "offline", "extra"} {
		l.ports[s] = local.FreePort(t, "127.0.0.1")
	}
	l.invPath = filepath.Join(t.TempDir(), "inventory.yml")
	l.writeInventory(opts.services)
	l.hap = local.NewHAProxy(t)
	l.renderInitialConfig()
	l.hap.Start()
	var err error
	l.view, err = dataplaneapi.NewRuntime(context.Background(), l.hap.StatsSocket)
	require.NoError(t, err)
	if !opts.noStart {
		l.start()
	}
	return l
}

// inventory is the lab's Pigsty inventory; pg-test-3 serves offline queries.
func (l *lab) inventory(extra string) string {
	var b strings.Builder
	b.WriteString("all:\n  children:\n    pg-test:\n      hosts:\n")
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("pg-test-%d", i)
		m := l.members[name]
		role := map[bool]string{true: "primary", false: "replica"}[i == 1]
		fmt.Fprintf(&b, "        %s: { pg_seq: %d, pg_role: %s, pg_port: %d, pgbouncer_port: %d, patroni_port: %d%s }\n",
			m.Addr, i, role, m.Port, m.Port, m.CheckPort, map[bool]string{true: ", pg_offline_query: true"}[i == 3])
	}
	opts := "inter 1s fastinter 500ms downinter 1s rise 3 fall 3 on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100"
	fmt.Fprintf(&b, `      vars:
        pg_cluster: pg-test
        pg_default_services:
          - { name: primary, ip: 127.0.0.1, port: %d, dest: default, check: /primary, selector: "[]", options: %q }
          - { name: replica, ip: 127.0.0.1, port: %d, dest: default, check: /read-only, selector: "[]", backup: "[? pg_role == `+"`primary`"+` || pg_role == `+"`offline`"+` ]", options: %q }
          - { name: default, ip: 127.0.0.1, port: %d, dest: postgres, check: /primary, selector: "[]", options: %q }
          - { name: offline, ip: 127.0.0.1, port: %d, dest: postgres, check: /replica, selector: "[? pg_role == `+"`offline`"+` || pg_offline_query ]", backup: "[? pg_role == `+"`replica`"+` && !pg_offline_query]", options: %q }
`, l.ports["primary"], opts, l.ports["replica"], opts, l.ports["default"], opts, l.ports["offline"], opts)
	b.WriteString(extra)
	b.WriteString(l.others)
	return b.String()
}

func (l *lab) writeInventory(extra string) {
	l.t.Helper()
	tmp := l.invPath + ".tmp"
	require.NoError(l.t, os.WriteFile(tmp, []byte(l.inventory(extra)), 0o644))
	require.NoError(l.t, os.Rename(tmp, l.invPath))
}

// renderInitialConfig is what an operator does before starting HAProxy:
// `pgsvc render --out` with the static inventory.
func (l *lab) renderInitialConfig() {
	l.t.Helper()
	m, err := selector.Load(l.invPath)
	require.NoError(l.t, err)
	d, err := reconcile.Compute(m.Clusters, reconcile.Live{}, true)
	require.NoError(l.t, err)
	files, err := dataplaneapi.Files(&d, dataplaneapi.LayoutService)
	require.NoError(l.t, err)
	_, err = dataplaneapi.WriteFiles(l.hap.ConfDir, files)
	require.NoError(l.t, err)
	require.NoError(l.t, dataplaneapi.WriteFingerprint(l.hap.ConfDir, nil, ""), "as `pgsvc render --out` does")
}

// start runs the daemon: etcd source, inventory source, reconciler.
func (l *lab) start() { l.startWith(nil) }

// startWith runs the daemon after customize adjusts its parts.
func (l *lab) startWith(customize func(*reconcile.Reconciler, *reconcile.EtcdSource)) {
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.logs = &local.LogBuffer{}
	log := slog.New(slog.NewTextHandler(l.logs, nil))
	var err error
	// As in the daemon, the HAProxy connection outlives the stop: a
	// stopping pgsvc releases its holds.
	rtCtx, closeRT := context.WithCancel(context.Background())
	l.closeRT = closeRT
	l.rt, err = dataplaneapi.NewRuntime(rtCtx, l.hap.StatsSocket)
	require.NoError(l.t, err)
	l.in = reconcile.NewInputs("", nil)
	inv := &reconcile.InventorySource{Path: l.invPath, Interval: 50 * time.Millisecond, Log: log, Reload: l.hup}
	require.NoError(l.t, inv.Load(l.in, true))
	cli, err := reconcile.NewEtcdClient(reconcile.EtcdConfig{Endpoints: []string{l.etcd.Endpoint}})
	require.NoError(l.t, err)
	src := &reconcile.EtcdSource{Client: cli, Layout: l.layout, Log: log, ProbeInterval: 200 * time.Millisecond}
	l.obs = newObserver()
	rec := &reconcile.Reconciler{In: l.in, Log: log, Resync: time.Hour, Observer: l.obs,
		HAProxy: &dataplaneapi.Syncer{Runtime: l.rt, Config: &dataplaneapi.ConfigDir{
			Dir: l.hap.ConfDir, MainConfig: l.hap.GlobalConfig, Reloader: &dataplaneapi.MasterReloader{Socket: l.hap.MasterSocket, Timeout: 10 * time.Second}}}}
	if customize != nil {
		customize(rec, src)
	}
	run := func(f func(context.Context, *reconcile.Inputs) error) {
		l.done.Add(1)
		go func() { defer l.done.Done(); _ = f(ctx, l.in) }()
	}
	run(src.Run)
	run(inv.Run)
	l.done.Add(1)
	go func() { defer l.done.Done(); _ = rec.Run(ctx) }()
	l.t.Cleanup(func() {
		l.stop()
		cli.Close()
		if l.t.Failed() {
			l.t.Logf("pgsvc log:\n%s\nhaproxy log:\n%s", l.logs.String(), l.hap.Log())
		}
	})
	if !l.noWait {
		l.waitRev(0)
	}
}

func (l *lab) stop() {
	if l.cancel != nil {
		l.cancel()
		l.done.Wait()
		l.closeRT()
		l.cancel = nil
	}
}

// waitRev waits for a successful pass whose inputs include etcd revision rev.
func (l *lab) waitRev(rev int64) reconcile.PassInfo {
	l.t.Helper()
	p, err := l.obs.wait(func(p reconcile.PassInfo) bool { return p.Err == nil && p.Revision >= rev }, 15*time.Second)
	if err != nil {
		l.t.Fatalf("no successful pass with revision >= %d: %v\nlogs:\n%s", rev, err, l.logs.String())
	}
	return p
}

// setOverride writes an override as `pgsvc set` does and returns its revision.
func (l *lab) setOverride(inst string, set map[string]any, unset ...string) int64 {
	l.t.Helper()
	m, err := selector.Load(l.invPath)
	require.NoError(l.t, err)
	_, _, err = reconcile.UpdateOverride(context.Background(), l.cli, l.layout, m, inst, set, unset)
	require.NoError(l.t, err)
	r, err := l.cli.Get(context.Background(), "probe")
	require.NoError(l.t, err)
	return r.Header.Revision
}

// enabled lists a backend's slots that take traffic (admin ready), sorted.
func (l *lab) enabled(service string) string {
	l.t.Helper()
	b := l.backend(service)
	var out []string
	for name, s := range b.Slots {
		if s.Admin == dataplaneapi.AdminReady {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (l *lab) backend(service string) dataplaneapi.BackendState {
	l.t.Helper()
	b, err := l.view.Backend(context.Background(), "pg-test-"+service)
	require.NoError(l.t, err)
	return b
}

func (l *lab) reloads() int {
	l.t.Helper()
	st, err := dataplaneapi.ReadMaster(context.Background(), l.hap.MasterSocket)
	require.NoError(l.t, err)
	return st.Reloads
}

// session opens a client session through a service and proves it works.
func (l *lab) session(service string) net.Conn {
	l.t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", l.ports[service]), 2*time.Second)
	require.NoError(l.t, err)
	l.t.Cleanup(func() { c.Close() })
	require.NoError(l.t, echo(c, "hello"), "session through %s", service)
	return c
}

func echo(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q", buf)
	}
	return nil
}

// observer records passes for tests to wait on (explicit signals, no sleeps).
type observer struct {
	mu     sync.Mutex
	passes []reconcile.PassInfo
	ch     chan struct{}
}

func newObserver() *observer { return &observer{ch: make(chan struct{})} }

func (o *observer) Pass(p reconcile.PassInfo) {
	o.mu.Lock()
	o.passes = append(o.passes, p)
	close(o.ch)
	o.ch = make(chan struct{})
	o.mu.Unlock()
}

func (o *observer) Desired([]reconcile.Service) {}

// HoldsReleased records holds released outside a pass (hold_max, shutdown)
// in order with the passes, as a pass of that hold alone (revision -1:
// never a pass waitRev waits for).
func (o *observer) HoldsReleased(ended []reconcile.HoldEvent, rep reconcile.Report) {
	if len(ended) > 0 {
		o.Pass(reconcile.PassInfo{Revision: -1, Report: rep, Holds: ended})
	}
}

func (o *observer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.passes)
}

// since returns the passes recorded after the first n.
func (o *observer) since(n int) []reconcile.PassInfo {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]reconcile.PassInfo(nil), o.passes[min(n, len(o.passes)):]...)
}

// wait returns the first pass (from the start) that satisfies ok.
func (o *observer) wait(ok func(reconcile.PassInfo) bool, timeout time.Duration) (reconcile.PassInfo, error) {
	return o.waitFrom(0, ok, timeout)
}

func (o *observer) waitFrom(from int, ok func(reconcile.PassInfo) bool, timeout time.Duration) (reconcile.PassInfo, error) {
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		for _, p := range o.passes[min(from, len(o.passes)):] {
			if ok(p) {
				o.mu.Unlock()
				return p, nil
			}
		}
		ch := o.ch
		o.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return reconcile.PassInfo{}, fmt.Errorf("timed out after %s", timeout)
		}
	}
}
