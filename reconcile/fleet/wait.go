package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one agent's news while waiting.
type Event struct {
	Node  string
	Kind  string // EventDone, EventGone or EventProgress
	Agent Agent  // its latest record (the last one before it went)
}

const (
	EventDone     = "done"     // the agent reports what was waited for
	EventGone     = "gone"     // its lease expired or it stopped: not waited for
	EventProgress = "progress" // a new record that is not done yet
)

// Condition is what an agent must report for a wait to end.
type Condition struct {
	Cluster string           // only agents serving it are waited for
	Done    func(Agent) bool // reported?
}

// LaggardsError names the agents that did not report in time.
type LaggardsError struct {
	Cluster  string
	Laggards []Agent
	Cause    error
}

func (e *LaggardsError) Error() string {
	parts := make([]string, len(e.Laggards))
	for i, a := range e.Laggards {
		why := "its last record says ready"
		if !a.Ready {
			why = "its last record says not ready: " + a.Reason
		}
		parts[i] = fmt.Sprintf("%s (applied revision %d; %s)", a.Node, a.Applied[e.Cluster], why)
	}
	return fmt.Sprintf("%d agent(s) serving %s did not confirm (%v): %s", len(parts), e.Cluster, e.Cause, strings.Join(parts, "; "))
}

// ErrNoAgents is returned when no live agent serves the cluster.
var ErrNoAgents = errors.New("no live pgsvc agent serves the cluster")

// Wait watches the agents under prefix until every live agent serving
// cond.Cluster is done, calling report for each one's news (done once,
// gone once, progress on each new record). An agent that goes, or stops
// serving the cluster, is not waited for. A watch that breaks (an etcd
// leader election, a compaction) is listed and watched again. It returns
// the agents that confirmed, or, when ctx ends first, a *LaggardsError.
func Wait(ctx context.Context, cli *clientv3.Client, prefix string, cond Condition, report func(Event)) ([]string, error) {
	waiting := map[string]Agent{}
	confirmed := map[string]bool{}
	var done []string
	gone := 0
	finish := func(n string, a Agent) {
		delete(waiting, n)
		if !confirmed[n] {
			confirmed[n] = true
			done = append(done, n)
			report(Event{Node: n, Kind: EventDone, Agent: a})
		}
	}
	leave := func(n string) {
		if last, ok := waiting[n]; ok {
			delete(waiting, n)
			gone++
			report(Event{Node: n, Kind: EventGone, Agent: last})
		}
	}
	// observe takes a waited-for agent's latest record.
	observe := func(n string, a Agent) {
		switch {
		case !a.Serves(cond.Cluster):
			leave(n)
		case cond.Done(a):
			finish(n, a)
		default:
			waiting[n] = a
			report(Event{Node: n, Kind: EventProgress, Agent: a})
		}
	}
	first := true
	pause := 100 * time.Millisecond // between re-lists after a broken watch, doubling to 2 s
	for {
		agents, rev, err := List(ctx, cli, prefix)
		if err != nil && first {
			return nil, err
		}
		if err != nil {
			// An election or a lost connection: try again until ctx ends,
			// then name the laggards.
			if !sleep(ctx, &pause) {
				break
			}
			continue
		}
		if first {
			for _, n := range Nodes(agents) {
				if a := agents[n]; a.Serves(cond.Cluster) {
					waiting[n] = a
				}
			}
		}
		for _, n := range Nodes(waiting) {
			if a, ok := agents[n]; ok {
				observe(n, a)
			} else {
				leave(n)
			}
		}
		if first && len(waiting) == 0 && len(done) == 0 {
			return nil, fmt.Errorf("%w %s (none registered under %s)", ErrNoAgents, cond.Cluster, prefix)
		}
		first = false
		if len(waiting) == 0 {
			break
		}
		if err := watch(ctx, cli, prefix, rev, waiting, observe, leave); err == nil || ctx.Err() != nil {
			break
		}
		// The watch broke: list again and go on from there.
		if !sleep(ctx, &pause) {
			break
		}
	}
	if len(waiting) == 0 {
		if len(done) == 0 {
			return nil, fmt.Errorf("%w %s: all %d that did went away while waited for", ErrNoAgents, cond.Cluster, gone)
		}
		return done, nil
	}
	lag := make([]Agent, 0, len(waiting))
	for _, n := range Nodes(waiting) {
		lag = append(lag, waiting[n])
	}
	cause := ctx.Err()
	if cause == nil {
		cause = errors.New("watch ended")
	}
	return done, &LaggardsError{Cluster: cond.Cluster, Laggards: lag, Cause: cause}
}

// watch follows the agents from revision rev+1 until none is waited for
// (nil), ctx ends, or the watch breaks (its error).
func watch(ctx context.Context, cli *clientv3.Client, prefix string, rev int64, waiting map[string]Agent,
	observe func(string, Agent), leave func(string)) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch pgsvc agents under %s: %w", prefix, err)
		}
		for _, ev := range resp.Events {
			n := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			if _, watched := waiting[n]; !watched {
				continue // done, or registered after the change: it starts from etcd, the change included
			}
			if ev.Type == clientv3.EventTypeDelete {
				leave(n)
				continue
			}
			if a, err := Parse(ev.Kv.Value); err == nil { // not a record: its next one tells
				observe(n, a)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch closed")
}

// sleep waits *pause (doubled for the next time, at most 2 s) unless ctx
// ends first (false).
func sleep(ctx context.Context, pause *time.Duration) bool {
	t := time.NewTimer(*pause)
	defer t.Stop()
	*pause = min(2*time.Second, 2**pause)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
