package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/fleet"
)

// waitApplied waits, after an override write at rev, until every live
// agent serving cluster shows that revision applied, printing each one.
func waitApplied(ctx context.Context, cli *clientv3.Client, cfg daemonConfig, cluster string, rev int64, out io.Writer) error {
	if rev == 0 {
		fmt.Fprintln(out, "nothing was written (no such override): nothing to wait for")
		return nil
	}
	fmt.Fprintf(out, "waiting for the agents serving %s to apply etcd revision %d (timeout %s)\n", cluster, rev, cfg.Timeout)
	cond := fleet.Condition{Cluster: cluster, Done: func(a fleet.Agent) bool { return a.Applied[cluster] >= rev }}
	done, err := fleet.Wait(ctx, cli, cfg.AgentsPrefix, cond, func(ev fleet.Event) {
		switch ev.Kind {
		case fleet.EventDone:
			fmt.Fprintf(out, "  %s: applied (revision %d)\n", ev.Node, ev.Agent.Applied[cluster])
		case fleet.EventGone:
			fmt.Fprintf(out, "  %s: gone (its registration expired or it stopped): not waited for\n", ev.Node)
		}
	})
	if err != nil {
		return waitError(err)
	}
	fmt.Fprintf(out, "all %d live agents serving %s applied revision %d\n", len(done), cluster, rev)
	return nil
}

// waitError keeps the laggards' error whole: it names them.
func waitError(err error) error {
	var lag *fleet.LaggardsError
	if errors.As(err, &lag) {
		return fmt.Errorf("not every HAProxy applied it: %w", err)
	}
	return err
}

func runDrain(ctx context.Context, args []string, out, errOut io.Writer) error {
	return drainCommand(ctx, "drain", args, out, errOut)
}

func runUndrain(ctx context.Context, args []string, out, errOut io.Writer) error {
	return drainCommand(ctx, "undrain", args, out, errOut)
}

// drainCommand implements `pgsvc drain INSTANCE [--wait] [--force]` and
// `pgsvc undrain INSTANCE [--wait]`: the override pgsvc_drain takes the
// instance out of every service on every HAProxy (its servers drain:
// sessions stay, no new one lands); --wait reports each agent's sessions
// left on its servers until all are zero.
func drainCommand(ctx context.Context, verb string, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	var wait, force bool
	fs := newFlags(verb, verb+" <instance> --inventory FILE [--wait] [--timeout D] [flags]", errOut)
	fs.BoolVar(&wait, "wait", false, "wait until every HAProxy serving the instance's cluster applied it (drain: and until its sessions there are gone)")
	if verb == "drain" {
		fs.BoolVar(&force, "force", false, "drain the current primary too, out of the primary services as well (new writes then find no server); without it a drained instance that becomes primary stays in them")
	}
	flags, positional := splitPositional(args)
	if err := parseDaemonFlags(fs, flags, &cfg); err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("usage: pgsvc %s <instance> --inventory FILE [--wait]", verb)
	}
	inst := positional[0]
	return withLive(ctx, cfg, func(ctx context.Context, l *live) error {
		c, err := reconcile.Instance(l.model, inst)
		if err != nil {
			return err
		}
		var set map[string]any
		var unset []string
		if verb == "drain" {
			if !force {
				if err := refusePrimary(ctx, l, c.Name, inst); err != nil {
					return err
				}
			}
			set = map[string]any{reconcile.DrainVar: true}
			if force {
				set[reconcile.DrainVar] = reconcile.DrainAlways
			}
		} else {
			unset = []string{reconcile.DrainVar}
		}
		vars, rev, err := reconcile.UpdateOverride(ctx, l.cli, cfg.layout(), l.model, inst, set, unset)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s (etcd revision %d)\n", inst, formatVars(vars), rev)
		if !wait {
			return nil
		}
		if err := waitApplied(ctx, l.cli, cfg, c.Name, rev, out); err != nil {
			return err
		}
		if verb == "undrain" {
			return nil
		}
		return waitDrained(ctx, l.cli, cfg, c.Name, inst, out)
	})
}

// refusePrimary refuses to drain the member that holds the leader key.
func refusePrimary(ctx context.Context, l *live, cluster, inst string) error {
	st, err := reconcile.ListState(ctx, l.cli, l.cfg.layout(), nil)
	if err != nil {
		return err
	}
	if dc := st.Clusters[cluster]; dc != nil && dc.Leader == inst {
		return fmt.Errorf("%s is the primary of %s (it holds Patroni's leader key): draining it leaves the primary services without a server, so new writes fail; switch over first (patronictl switchover), or pass --force", inst, cluster)
	}
	return nil
}

// waitDrained reports each agent's sessions left on the instance's
// servers until every one is zero.
func waitDrained(ctx context.Context, cli *clientv3.Client, cfg daemonConfig, cluster, inst string, out io.Writer) error {
	fmt.Fprintf(out, "waiting for the sessions on %s to end on every HAProxy\n", inst)
	last := map[string]int{}
	cond := fleet.Condition{Cluster: cluster, Done: func(a fleet.Agent) bool { n, ok := a.Draining[inst]; return ok && n == 0 }}
	done, err := fleet.Wait(ctx, cli, cfg.AgentsPrefix, cond, func(ev fleet.Event) {
		n, known := ev.Agent.Draining[inst]
		switch {
		case ev.Kind == fleet.EventDone:
			fmt.Fprintf(out, "  %s: no sessions left on %s\n", ev.Node, inst)
		case ev.Kind == fleet.EventGone:
			fmt.Fprintf(out, "  %s: gone: not waited for\n", ev.Node)
		case known && last[ev.Node] != n+1:
			last[ev.Node] = n + 1
			fmt.Fprintf(out, "  %s: %d session(s) left on %s\n", ev.Node, n, inst)
		}
	})
	if err != nil {
		var lag *fleet.LaggardsError
		if errors.As(err, &lag) {
			parts := make([]string, len(lag.Laggards))
			for i, a := range lag.Laggards {
				if n, ok := a.Draining[inst]; ok {
					parts[i] = fmt.Sprintf("%s (%d sessions)", a.Node, n)
				} else {
					parts[i] = fmt.Sprintf("%s (no session count yet)", a.Node)
				}
			}
			return fmt.Errorf("sessions on %s remain (%v): %s", inst, lag.Cause, strings.Join(parts, "; "))
		}
		return err
	}
	fmt.Fprintf(out, "%s is drained on all %d live agents: safe to restart\n", inst, len(done))
	return nil
}

// fleetRow is one agent in `status --fleet`.
type fleetRow struct {
	fleet.Agent
	// Behind names the clusters whose latest etcd change (Patroni's keys,
	// its instances' overrides) the agent does not show yet.
	Behind map[string]int64 `json:"behind,omitempty"`
}

// runFleetStatus prints every live agent: what it serves, what it applied
// against each cluster's latest change, its readiness.
func runFleetStatus(ctx context.Context, cfg daemonConfig, format string, out io.Writer) error {
	return withEtcd(ctx, cfg, func(ctx context.Context, cli *clientv3.Client) error { return fleetStatus(ctx, cli, cfg, format, out) })
}

func fleetStatus(ctx context.Context, cli *clientv3.Client, cfg daemonConfig, format string, out io.Writer) error {
	agents, rev, err := fleet.List(ctx, cli, cfg.AgentsPrefix)
	if err != nil {
		return err
	}
	latest, err := latestChanges(ctx, cli, cfg)
	if err != nil {
		return err
	}
	return writeFleet(out, fleetRows(agents, latest), rev, format, cfg.AgentsPrefix)
}

// fleetRows is the agents by node, each with the clusters whose latest
// change it does not show yet.
func fleetRows(agents map[string]fleet.Agent, latest map[string]int64) []fleetRow {
	rows := make([]fleetRow, 0, len(agents))
	for _, n := range fleet.Nodes(agents) {
		a := agents[n]
		r := fleetRow{Agent: a}
		for _, c := range a.Clusters {
			if want := latest[c]; a.Applied[c] < want {
				if r.Behind == nil {
					r.Behind = map[string]int64{}
				}
				r.Behind[c] = want
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// writeFleet prints `status --fleet`: a table, or -o json.
func writeFleet(out io.Writer, rows []fleetRow, rev int64, format, prefix string) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Revision int64      `json:"etcd_revision"`
			Agents   []fleetRow `json:"agents"`
		}{rev, rows})
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintf(out, "no live pgsvc agents under %s\n", prefix)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVERSION\tHAPROXY\tCLUSTERS\tAPPLIED\tREADY\tHOLDS\tDRAINING\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Node, r.Version, orDash(r.HAProxy), strings.Join(r.Clusters, ","),
			r.applied(), r.ready(), orDash(strings.Join(r.holds(), ",")), orDash(r.draining()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "%d agents, etcd revision %d\n", len(rows), rev)
	return err
}

// applied is the APPLIED column: current, or each cluster it is behind on
// with its applied and the latest revision.
func (r fleetRow) applied() string {
	if len(r.Behind) == 0 {
		return "current"
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(r.Behind)) {
		parts = append(parts, fmt.Sprintf("%s %d < %d", c, r.Applied[c], r.Behind[c]))
	}
	return "behind: " + strings.Join(parts, ", ")
}

// ready is the READY column: yes, or no with the record's reason.
func (r fleetRow) ready() string {
	switch {
	case r.Ready:
		return "yes"
	case r.Reason == "":
		return "no" // a record from a pgsvc that gave no reason
	}
	return "no: " + r.Reason
}

func (r fleetRow) holds() []string {
	holds := slices.Clone(r.Holds)
	for _, c := range r.Armed {
		holds = append(holds, c+" (armed)")
	}
	return holds
}

func (r fleetRow) draining() string {
	var draining []string
	for _, inst := range slices.Sorted(maps.Keys(r.Draining)) {
		draining = append(draining, fmt.Sprintf("%s=%d", inst, r.Draining[inst]))
	}
	return strings.Join(draining, ",")
}

// latestChanges is, per cluster, the newest revision among its Patroni
// keys and its instances' overrides: what an agent that is current shows.
func latestChanges(ctx context.Context, cli *clientv3.Client, cfg daemonConfig) (map[string]int64, error) {
	l := cfg.layout()
	out := map[string]int64{}
	resp, err := cli.Get(ctx, l.Namespace, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", l.Namespace, err)
	}
	for _, kv := range resp.Kvs {
		scope, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), l.Namespace), "/")
		out[scope] = max(out[scope], kv.ModRevision)
	}
	resp, err = cli.Get(ctx, l.OverridePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", l.OverridePrefix, err)
	}
	for _, kv := range resp.Kvs {
		inst := strings.TrimPrefix(string(kv.Key), l.OverridePrefix)
		if i := strings.LastIndex(inst, "-"); i > 0 {
			// <cluster>-<seq>: the cluster is the name before the last dash.
			out[inst[:i]] = max(out[inst[:i]], kv.ModRevision)
		}
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runFence implements `pgsvc fence --cluster C`, for Patroni's
// pre_promote hook: it returns once every live agent serving C shows the
// leader key's holder alone up in C's primary services (the old primary
// forced out on every HAProxy), acknowledged through etcd. Availability
// first by default: on timeout it logs the agents that did not confirm
// and exits 0 (Patroni promotes); --strict exits 1 (Patroni does not).
func runFence(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	cfg.Inventory = "-" // etcd alone
	var strict bool
	fs := newFlags("fence", "fence --cluster C [--timeout D] [--strict] [flags]", errOut)
	fs.BoolVar(&strict, "strict", false, "exit 1 when an agent does not confirm in time (as pre_promote: Patroni then does not promote)")
	if err := parseDaemonFlags(fs, args, &cfg); err != nil {
		return err
	}
	if len(cfg.Clusters) != 1 {
		return fmt.Errorf("fence: --cluster: want exactly one cluster, got %d", len(cfg.Clusters))
	}
	err := withEtcd(ctx, cfg, func(ctx context.Context, cli *clientv3.Client) error {
		return fence(ctx, cli, cfg, cfg.Clusters[0], out)
	})
	if err != nil {
		// Whatever went wrong (etcd unreachable included), availability
		// first unless --strict.
		return fenceUnconfirmed(strict, errOut, err)
	}
	return nil
}

func fence(ctx context.Context, cli *clientv3.Client, cfg daemonConfig, cluster string, out io.Writer) error {
	key := cfg.layout().Namespace + cluster + "/leader"
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("fence: read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("no leader key %s: no leader term to fence for", key)
	}
	want := reconcile.Fence{Leader: string(resp.Kvs[0].Value), Term: resp.Kvs[0].CreateRevision}
	fmt.Fprintf(out, "fencing %s for %s (leader key created at revision %d): waiting for every HAProxy to show it alone in the primary services (timeout %s)\n",
		cluster, want.Leader, want.Term, cfg.Timeout)
	cond := fleet.Condition{Cluster: cluster, Done: func(a fleet.Agent) bool { return a.Fenced[cluster] == want }}
	done, err := fleet.Wait(ctx, cli, cfg.AgentsPrefix, cond, func(ev fleet.Event) {
		switch ev.Kind {
		case fleet.EventDone:
			fmt.Fprintf(out, "  %s: fenced\n", ev.Node)
		case fleet.EventGone:
			fmt.Fprintf(out, "  %s: gone: not waited for\n", ev.Node)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s fenced on all %d live agents\n", cluster, len(done))
	return nil
}

// fenceUnconfirmed is the timeout's outcome: an error with --strict, else
// a warning and success (availability first).
func fenceUnconfirmed(strict bool, errOut io.Writer, err error) error {
	if strict {
		return fmt.Errorf("fence not confirmed (--strict: do not promote): %w", err)
	}
	fmt.Fprintf(errOut, "pgsvc fence: not confirmed, promoting anyway (availability first; --strict refuses): %v\n", err)
	return nil
}
