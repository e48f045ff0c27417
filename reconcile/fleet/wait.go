package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
		why := "ready"
		if !a.Ready {
			why = "not ready: " + a.Reason
		}
		parts[i] = fmt.Sprintf("%s (applied revision %d; %s)", a.Node, a.Applied[e.Cluster], why)
	}
	return fmt.Sprintf("%d agent(s) serving %s did not confirm (%v): %s", len(parts), e.Cluster, e.Cause, strings.Join(parts, "; "))
}

// ErrNoAgents is returned when no live agent serves the cluster.
var ErrNoAgents = errors.New("no live pgsvc agent serves the cluster")

// Wait watches the agents under prefix until every live agent serving
// cond.Cluster is done, calling report for each one's news (done once,
// gone once, progress on each new record). An agent that goes is not
// waited for. It returns the agents that confirmed, or, when ctx ends
// first, a *LaggardsError.
func Wait(ctx context.Context, cli *clientv3.Client, prefix string, cond Condition, report func(Event)) ([]string, error) {
	agents, rev, err := List(ctx, cli, prefix)
	if err != nil {
		return nil, err
	}
	waiting := map[string]Agent{}
	var done []string
	for _, n := range Nodes(agents) {
		a := agents[n]
		if !a.Serves(cond.Cluster) {
			continue
		}
		if cond.Done(a) {
			done = append(done, n)
			report(Event{Node: n, Kind: EventDone, Agent: a})
			continue
		}
		waiting[n] = a
		report(Event{Node: n, Kind: EventProgress, Agent: a})
	}
	if len(waiting) == 0 {
		if len(done) == 0 {
			return nil, fmt.Errorf("%w %s (none registered under %s)", ErrNoAgents, cond.Cluster, prefix)
		}
		return done, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return done, fmt.Errorf("watch pgsvc agents under %s: %w", prefix, err)
		}
		for _, ev := range resp.Events {
			n := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			last, watched := waiting[n]
			if ev.Type == clientv3.EventTypeDelete {
				if watched {
					delete(waiting, n)
					report(Event{Node: n, Kind: EventGone, Agent: last})
				}
				continue
			}
			a, err := Parse(ev.Kv.Value)
			if err != nil || !a.Serves(cond.Cluster) {
				continue
			}
			if !watched {
				continue // registered after the write: it starts from etcd, the change included
			}
			if cond.Done(a) {
				delete(waiting, n)
				done = append(done, n)
				report(Event{Node: n, Kind: EventDone, Agent: a})
				continue
			}
			waiting[n] = a
			report(Event{Node: n, Kind: EventProgress, Agent: a})
		}
		if len(waiting) == 0 {
			return done, nil
		}
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
