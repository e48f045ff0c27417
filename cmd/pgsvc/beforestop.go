package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/reconcile/fleet"
)

// stopKeyTTL is how long a before_stop key outlives the hook: long enough
// for every agent to see it, short enough to leave nothing behind. Agents
// match it to the request it names, so a stale one starts nothing.
const stopKeyTTL = 60

// runBeforeStop implements `pgsvc before-stop --cluster C`, for Patroni's
// before_stop hook. Patroni runs it synchronously right before it shuts
// PostgreSQL down (after the checkpoint of a graceful demotion): when a
// switchover was requested and this node's member leads, it tells the
// agents serving C (hold_from: before_stop) to start holding new
// connections, and returns once each armed agent's HAProxy holds, so no
// connection reaches PostgreSQL while it shuts down. Any other stop
// (restart, shutdown without a request) returns at once. Whatever etcd or
// the agents do it exits 0 (Patroni stops PostgreSQL whatever a
// before_stop hook says; an agent that did not confirm holds once the
// leader key leaves the old primary); bad flags are an error.
func runBeforeStop(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	cfg.Inventory = "-" // etcd alone
	cfg.Timeout = 2 * time.Second
	var member string
	var grace time.Duration
	fs := newFlags("before-stop", "before-stop --cluster C [--member M] [--timeout D] [--grace D] [flags]", errOut)
	fs.StringVar(&member, "member", "", "this node's Patroni `name`: act only when it holds the leader key")
	fs.DurationVar(&grace, "grace", 0, "once every HAProxy holds, wait this `duration` more: requests that entered before the hold finish before PostgreSQL's fast shutdown ends them")
	if err := parseDaemonFlags(fs, args, &cfg); err != nil {
		return err
	}
	if len(cfg.Clusters) != 1 {
		return fmt.Errorf("before-stop: --cluster: want exactly one cluster, got %d", len(cfg.Clusters))
	}
	if grace < 0 || grace >= cfg.Timeout {
		return fmt.Errorf("before-stop: --grace %s: want 0 or more and less than --timeout %s", grace, cfg.Timeout)
	}
	start := time.Now()
	err := withEtcd(ctx, cfg, func(ctx context.Context, cli *clientv3.Client) error {
		return beforeStop(ctx, cli, cfg, cfg.Clusters[0], member, grace, out)
	})
	if err != nil {
		fmt.Fprintf(errOut, "pgsvc before-stop: %v; PostgreSQL stops anyway (an agent that did not confirm holds once the leader key leaves the old primary)\n", err)
		return nil
	}
	fmt.Fprintf(out, "before-stop took %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func beforeStop(ctx context.Context, cli *clientv3.Client, cfg daemonConfig, cluster, member string, grace time.Duration, out io.Writer) error {
	l := cfg.layout()
	prefix := l.Namespace + cluster + "/"
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read %s: %w", prefix, err)
	}
	var leader string
	var request *dcs.Failover
	for _, kv := range resp.Kvs {
		switch string(kv.Key) {
		case prefix + "leader":
			leader = string(kv.Value)
		case prefix + "failover":
			if request, err = dcs.ParseFailover(kv.Value); err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
			if request != nil {
				request.Revision = kv.ModRevision
			}
		}
	}
	switch {
	case request == nil || !request.Due(time.Now()):
		fmt.Fprintf(out, "%s: no switchover due (failover key %s): nothing to hold\n", cluster, prefix+"failover")
		return nil
	case leader == "":
		fmt.Fprintf(out, "%s: no leader key: nothing to hold\n", cluster)
		return nil
	case member != "" && leader != member:
		fmt.Fprintf(out, "%s: %s leads, not %s: nothing to hold\n", cluster, leader, member)
		return nil
	}
	value, err := json.Marshal(dcs.Stop{Leader: leader, Request: request.Revision})
	if err != nil {
		return err
	}
	lease, err := cli.Grant(ctx, stopKeyTTL)
	if err != nil {
		return fmt.Errorf("etcd lease for the before_stop key: %w", err)
	}
	key := l.StopPrefix + cluster
	if _, err := cli.Put(ctx, key, string(value), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("etcd put %s: %w", key, err)
	}
	fmt.Fprintf(out, "%s: %s stops for the switchover requested at revision %d: waiting for every armed HAProxy to hold (timeout %s)\n",
		cluster, leader, request.Revision, cfg.Timeout)
	// An agent is done once it holds, or once it has seen the request and
	// is not armed (holding off, HAProxy < 3.0, hold_from: request).
	cond := fleet.Condition{Cluster: cluster, Done: func(a fleet.Agent) bool {
		return slices.Contains(a.Holds, cluster) || a.Applied[cluster] >= request.Revision && !slices.Contains(a.Armed, cluster)
	}}
	done, err := fleet.Wait(ctx, cli, cfg.AgentsPrefix, cond, func(ev fleet.Event) {
		switch {
		case ev.Kind == fleet.EventDone && slices.Contains(ev.Agent.Holds, cluster):
			fmt.Fprintf(out, "  %s: holding\n", ev.Node)
		case ev.Kind == fleet.EventDone:
			fmt.Fprintf(out, "  %s: not holding (holding off or not armed)\n", ev.Node)
		case ev.Kind == fleet.EventGone:
			fmt.Fprintf(out, "  %s: gone: not waited for\n", ev.Node)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: all %d live agents ready for the stop\n", cluster, len(done))
	if grace > 0 {
		select {
		case <-time.After(grace):
		case <-ctx.Done():
		}
	}
	return nil
}
