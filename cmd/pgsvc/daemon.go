package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/fleet"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
	"github.com/pgsvc/pgsvc/selector"
)

// live holds what the live commands share: config, etcd client, model.
type live struct {
	cfg   daemonConfig
	cli   *clientv3.Client
	model *selector.Model
}

func openLive(cfg daemonConfig) (*live, error) {
	model, err := selector.Load(cfg.Inventory)
	if err != nil {
		return nil, err
	}
	cli, err := reconcile.NewEtcdClient(cfg.etcd())
	if err != nil {
		return nil, err
	}
	return &live{cfg: cfg, cli: cli, model: model}, nil
}

// withLive runs f with the inventory loaded and an etcd client, bounded by
// the one-shot timeout.
func withLive(ctx context.Context, cfg daemonConfig, f func(context.Context, *live) error) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	l, err := openLive(cfg)
	if err != nil {
		return err
	}
	defer l.cli.Close()
	return f(ctx, l)
}

// withEtcd runs f with an etcd client, bounded by the one-shot timeout
// (commands that need no inventory).
func withEtcd(ctx context.Context, cfg daemonConfig, f func(context.Context, *clientv3.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cli, err := reconcile.NewEtcdClient(cfg.etcd())
	if err != nil {
		return err
	}
	defer cli.Close()
	return f(ctx, cli)
}

// inputs builds one-shot inputs from a fresh etcd list.
func (l *live) inputs(ctx context.Context) (*reconcile.Inputs, error) {
	in := reconcile.NewInputs(l.cfg.Node, l.cfg.Clusters)
	if err := in.SetModel(l.model); err != nil {
		return nil, err
	}
	st, err := reconcile.ListState(ctx, l.cli, l.cfg.layout(), nil)
	if err != nil {
		return nil, err
	}
	in.ReplaceState(st)
	return in, nil
}

func runDaemon(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	var printConfig bool
	fs := newFlags("run", "run --inventory FILE [--config FILE] [flags]", errOut)
	fs.BoolVar(&printConfig, "print-config", false, "print the effective configuration (secrets masked) and exit")
	if err := parseDaemonFlags(fs, args, &cfg); err != nil {
		return err
	}
	if printConfig {
		_, err := io.WriteString(out, cfg.masked())
		return err
	}
	if err := cfg.checkPermissions(); err != nil {
		return err
	}
	// SIGHUP's default action kills the process: catch it before anything
	// slow, so a reload signal during start-up is not fatal.
	hupSignal := make(chan os.Signal, 1)
	signal.Notify(hupSignal, syscall.SIGHUP)
	defer signal.Stop(hupSignal)
	level := new(slog.LevelVar)
	log := cfg.loggerWithLevel(errOut, level)
	// The first SIGTERM (or SIGINT) ends ctx; a second exits at once.
	defer forceOnSecondSignal(ctx, log, os.Exit)()
	cli, err := reconcile.NewEtcdClient(cfg.etcd())
	if err != nil {
		return err
	}
	defer cli.Close()
	// The HAProxy connection outlives the signal: a pass in flight when
	// SIGTERM arrives must be able to finish its commands.
	haproxyCtx, closeHAProxy := context.WithCancel(context.WithoutCancel(ctx))
	defer closeHAProxy()
	syncer, err := cfg.syncer(haproxyCtx)
	if err != nil {
		return err
	}
	m := metrics.New()
	if cfg.MetricsListen != "" {
		addr, err := m.Serve(ctx, cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", cfg.MetricsListen, err)
		}
		log.Info("metrics", "address", addr.String(), "paths", "/metrics /healthz /readyz")
	}
	in := reconcile.NewInputs(cfg.Node, cfg.Clusters)
	// The fleet record carries /readyz's readiness: it reads m.Ready, so m
	// observes each pass first, and a change from a source (etcd watch,
	// inventory) refreshes the record too.
	agent := fleet.NewReporter(cfg.agentName(), versionString(), func() []string {
		_, scope := in.Model()
		names := make([]string, len(scope))
		for i, c := range scope {
			names[i] = c.Name
		}
		sort.Strings(names)
		return names
	}, m.Ready)
	hup := make(chan struct{}, 1)
	inv := &reconcile.InventorySource{Path: cfg.Inventory, Log: log, Reload: hup,
		Result:   func(err error) { m.Inventory(err); agent.Refresh() },
		Validate: func(d reconcile.Desired) error { _, err := dataplaneapi.Files(&d, cfg.fileLayout()); return err }}
	if err := inv.LoadContext(ctx, in, true); err != nil {
		return err // the first inventory must be valid: there is no last good one
	}
	src := &reconcile.EtcdSource{Client: cli, Layout: cfg.layout(), Log: log, Error: m.EtcdError,
		Ready: func(ready bool) { m.EtcdReady(ready); agent.Refresh() }}
	rec := &reconcile.Reconciler{In: in, Log: log, Resync: cfg.Resync, Observer: observers{m, agent},
		HAProxy: syncer, Hold: cfg.hold(),
		// Patroni's REST API, as HAProxy's checks reach it; an https one
		// with a private CA fails verification, and the hold then ends on
		// the member key instead.
		Promotion: reconcile.HTTPPromotionProbe(&http.Client{Timeout: time.Second})}
	log.Info("pgsvc running", "inventory", cfg.Inventory, "etcd", cfg.Etcd, "namespace", cfg.Namespace,
		"node", cfg.Node, "clusters", cfg.Clusters.String(), "socket", cfg.Socket, "conf_dir", cfg.ConfDir,
		"main_config", syncer.Config.MainConfigFile(), "reload", reloaderName(syncer.Config.Reloader), "resync", cfg.Resync)
	switch {
	case cfg.reloadFound != "" && syncer.Config.Reloader == nil:
		log.Warn("no reload found at start-up: structural changes are written, and the master socket is looked for again when one needs a reload", "why", cfg.reloadFound)
	case cfg.reloadFound != "":
		log.Info("reload chosen at start-up", "reload", reloaderName(syncer.Config.Reloader), "why", cfg.reloadFound)
	}
	var wg sync.WaitGroup
	goRun := func(f func(context.Context, *reconcile.Inputs) error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx, in) }()
	}
	goRun(src.Run)
	goRun(inv.Run)
	goRun(func(ctx context.Context, in *reconcile.Inputs) error {
		syncer.WatchWorker(ctx, 250*time.Millisecond, func() {
			log.Info("haproxy worker changed, verifying every service")
			in.MarkAll(reconcile.CauseHAProxy)
		})
		return nil
	})
	pub := &fleet.Publisher{Client: cli, Prefix: cfg.AgentsPrefix, TTL: cfg.AgentTTL, Log: log, Registered: m.AgentRegistered}
	goRun(func(ctx context.Context, _ *reconcile.Inputs) error { return pub.Run(ctx, agent.Updates()) })
	goRun(func(ctx context.Context, _ *reconcile.Inputs) error {
		sampleFleet(ctx, syncer.Runtime, agent, time.Second)
		return nil
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		onHUP(ctx, hupSignal, args, cfg, level, hup, log, rec.SetHold)
	}()
	err = rec.Run(ctx) // returns when ctx ends, after the pass in flight
	wg.Wait()
	log.Info("pgsvc stopped")
	return err
}

// onHUP re-reads the config file and the inventory on every SIGHUP. The log
// level and the switchover hold change live; settings that need new
// connections are reported.
func onHUP(ctx context.Context, sig <-chan os.Signal, args []string, running daemonConfig, level *slog.LevelVar, hup chan<- struct{}, log *slog.Logger,
	setHold func(reconcile.HoldConfig)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		}
		next := defaultConfig()
		fs := newFlags("run", "run", io.Discard)
		fs.Bool("print-config", false, "")
		if err := parseDaemonFlags(fs, args, &next); err != nil {
			log.Error("SIGHUP: config rejected, the running one stays", "err", err)
		} else {
			var l slog.Level
			_ = l.UnmarshalText([]byte(next.LogLevel))
			level.Set(l)
			setHold(next.hold())
			if changed := restartNeeded(running, next); len(changed) > 0 {
				log.Warn("SIGHUP: these settings take effect on restart", "settings", changed)
			}
		}
		log.Info("SIGHUP: re-reading the inventory")
		select {
		case hup <- struct{}{}:
		default:
		}
	}
}

func restartNeeded(a, b daemonConfig) []string {
	var out []string
	a.LogLevel, b.LogLevel = "", ""
	a.Hold, b.Hold, a.HoldMax, b.HoldMax, a.HoldFrom, b.HoldFrom = false, false, 0, 0, "", "" // live
	ya, yb := map[string]any{}, map[string]any{}
	_ = yaml.Unmarshal([]byte(a.masked()), &ya)
	_ = yaml.Unmarshal([]byte(b.masked()), &yb)
	for k, v := range yb {
		if fmt.Sprint(ya[k]) != fmt.Sprint(v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func runReconcile(ctx context.Context, args []string, out, errOut io.Writer) error {
	if hasFlag(args, "state") {
		return runReconcileOffline(ctx, args, out, errOut)
	}
	cfg := defaultConfig()
	var dryRun bool
	var format string
	fs := newFlags("reconcile", "reconcile [--dry-run] [-o text|json] --inventory FILE [flags]   (offline: --state FILE)", errOut)
	fs.BoolVar(&dryRun, "dry-run", false, "print the runtime commands and config changes it would make, change nothing")
	fs.StringVar(&format, "o", "text", "output `format`: text or json")
	fs.String("state", "", "Patroni snapshot `file` instead of live etcd and HAProxy (offline, implies --dry-run)")
	if err := parseDaemonFlags(fs, args, &cfg); err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return fmt.Errorf("-o %q: want text or json", format)
	}
	if !dryRun {
		if err := cfg.checkPermissions(); err != nil {
			return err
		}
	}
	var rep reconcile.Report
	err := withLive(ctx, cfg, func(ctx context.Context, l *live) error {
		in, err := l.inputs(ctx)
		if err != nil {
			return err
		}
		// Once started, the pass is not cut short by a signal (only by
		// --timeout): HAProxy is never left half-way.
		passCtx := context.WithoutCancel(ctx)
		if deadline, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			passCtx, cancel = context.WithDeadline(passCtx, deadline)
			defer cancel()
		}
		syncer, err := cfg.syncer(passCtx)
		if err != nil {
			return err
		}
		syncer.KeepHeld = true // a hold through a switchover is the daemon's to end
		rep, err = (&reconcile.Reconciler{In: in, Log: cfg.logger(errOut), HAProxy: syncer}).Pass(passCtx, dryRun)
		return err
	})
	if err != nil {
		return err
	}
	if err := writeReport(out, rep, format, dryRun, cfg.ConfDir); err != nil {
		return err
	}
	if dryRun && !rep.Empty() {
		return &exitError{code: 2}
	}
	return nil
}

func writeReport(w io.Writer, rep reconcile.Report, format string, dryRun bool, dir string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if rep.Commands == nil {
			rep.Commands = []reconcile.AppliedCommand{}
		}
		return enc.Encode(rep)
	}
	if rep.Empty() {
		fmt.Fprintln(w, "nothing to change")
		writeHeldLeft(w, rep)
		return nil
	}
	verb := "applied"
	if dryRun {
		verb = "would run"
	}
	for _, c := range rep.Commands {
		fmt.Fprintf(w, "%s: %s\n", verb, c.Line)
	}
	for _, f := range rep.Written {
		fmt.Fprintf(w, "%s: write %s\n", verb, filepath.Join(dir, f))
		for _, line := range rep.FileChanges[f] {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	for _, f := range rep.Removed {
		fmt.Fprintf(w, "%s: remove %s\n", verb, filepath.Join(dir, f))
	}
	for _, r := range rep.Reload {
		fmt.Fprintf(w, "reload: %s\n", r)
	}
	writeHeldLeft(w, rep)
	return nil
}

func writeHeldLeft(w io.Writer, rep reconcile.Report) {
	for _, f := range rep.HeldLeft {
		fmt.Fprintf(w, "left holding: frontend %s (maxconn 0 while Patroni's switchover is under way: the running pgsvc's hold, which it releases)\n", f)
	}
}

// hasFlag reports whether args set -name or --name (with or without =value).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if k, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); k == name {
			return true
		}
	}
	return false
}

// reloaderName is how the startup log names the reload pgsvc will use.
func reloaderName(r dataplaneapi.Reloader) string {
	if r == nil {
		return "none"
	}
	return r.String()
}

// observers hands the loop's news to each of its observers, in order.
type observers []reconcile.Observer

func (o observers) Pass(p reconcile.PassInfo) {
	for _, x := range o {
		x.Pass(p)
	}
}

func (o observers) Desired(services []reconcile.Service) {
	for _, x := range o {
		x.Desired(services)
	}
}

func (o observers) HoldsReleased(ended []reconcile.HoldEvent, rep reconcile.Report) {
	for _, x := range o {
		if h, ok := x.(reconcile.HoldObserver); ok {
			h.HoldsReleased(ended, rep)
		}
	}
}

// sampleFleet reads, every interval, HAProxy's version and the sessions
// still open on each drained instance's servers, for this agent's record
// (drain --wait). A read that fails is skipped: the record keeps the
// last one.
func sampleFleet(ctx context.Context, rt *dataplaneapi.Runtime, agent *fleet.Reporter, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		version, draining, err := readFleetSample(rctx, rt, agent.DrainedSlots())
		cancel()
		if err == nil {
			agent.Sample(version, draining)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func readFleetSample(ctx context.Context, rt *dataplaneapi.Runtime, drained map[string][]fleet.DrainedSlot) (string, map[string]int, error) {
	info, err := rt.Show(ctx, "show info")
	if err != nil {
		return "", nil, err
	}
	var version string
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			version = strings.TrimSpace(v)
		}
	}
	if len(drained) == 0 {
		return version, nil, nil
	}
	var backends []string
	for _, slots := range drained {
		for _, s := range slots {
			if !slices.Contains(backends, s.Backend) {
				backends = append(backends, s.Backend)
			}
		}
	}
	states, err := rt.Backends(ctx, backends)
	if err != nil {
		return "", nil, err
	}
	out := map[string]int{}
	for inst, slots := range drained {
		n := 0
		for _, s := range slots {
			if st, ok := states[s.Backend].Slots[s.Server]; ok && st.Sessions > 0 {
				n += st.Sessions
			}
		}
		out[inst] = n
	}
	return version, out, nil
}
