// Package fleet is how pgsvc daemons account for themselves in etcd: each
// publishes an Agent record under a prefix, on a lease of its own, so
// `pgsvc set --wait`, `drain --wait` and `status --fleet` can tell which
// HAProxy applied what, which one is stuck, and which one is gone. No
// server beyond etcd, which every pgsvc already uses.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgsvc/pgsvc/reconcile"
)

// DefaultPrefix and DefaultTTL are the config's defaults (agents_prefix,
// agent_ttl).
const (
	DefaultPrefix = "/pgsvc/agents/"
	DefaultTTL    = 10 * time.Second
)

// Agent is one pgsvc daemon as it publishes itself.
type Agent struct {
	Node     string   `json:"node"`
	Version  string   `json:"version"`
	HAProxy  string   `json:"haproxy_version,omitempty"`
	Clusters []string `json:"clusters"`
	// Applied is, per cluster, the etcd revision whose state this agent's
	// HAProxy shows (read back after the pass that applied it).
	Applied map[string]int64 `json:"applied"`
	Ready   bool             `json:"ready"`
	Reason  string           `json:"reason,omitempty"`
	Holds   []string         `json:"holds,omitempty"` // clusters holding new connections
	// Armed are the clusters whose hold waits for Patroni's before_stop
	// (`pgsvc before-stop` waits for them to hold).
	Armed []string `json:"armed,omitempty"`
	// Draining is, per drained instance this agent serves, the sessions
	// still open on its servers in HAProxy (scur of its slots).
	Draining map[string]int `json:"draining,omitempty"`
	// Fenced is, per cluster, the leader term in which this HAProxy shows
	// no server but the leader's up in the primary services (pgsvc fence).
	Fenced  map[string]reconcile.Fence `json:"fenced,omitempty"`
	Started time.Time                  `json:"started"`
}

// Serves reports whether the agent carries cluster.
func (a Agent) Serves(cluster string) bool {
	for _, c := range a.Clusters {
		if c == cluster {
			return true
		}
	}
	return false
}

// Key is an agent's key under prefix.
func Key(prefix, node string) string { return prefix + node }

// Publisher keeps the latest Agent under Key(Prefix, node) on a lease of
// TTL: the key is gone within TTL of the agent's death, and revoked at
// once on a clean stop. Writes are rate-limited (a bucket of 3 writes
// refilled at one per MinInterval: news is written at once, a storm at
// most four times a second) and skipped when nothing changed. An
// acknowledgement someone waits on (holds, armed holds, fences: `pgsvc
// before-stop` and `pgsvc fence` hold Patroni's switchover or promotion
// until they see it) is written at once, borrowing up to a bucket ahead;
// those change only with Patroni's leader terms.
type Publisher struct {
	Client      *clientv3.Client
	Prefix      string
	TTL         time.Duration
	MinInterval time.Duration // 0: 250 ms (four writes a second sustained)
	Log         *slog.Logger
}

// Run publishes every Agent from updates until ctx ends. etcd failures
// are logged and retried (a new lease when the old one was lost); they
// never stop the daemon.
func (p *Publisher) Run(ctx context.Context, updates <-chan Agent) error {
	every := p.MinInterval
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	var (
		latest, written *Agent
		lease           clientv3.LeaseID
		alive           <-chan *clientv3.LeaseKeepAliveResponse
		tokens          = float64(publishBurst)
		refilled        = time.Now()
		retry           <-chan time.Time
	)
	defer func() {
		if lease != 0 {
			// A clean stop: the key goes now, not at the lease's expiry.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, _ = p.Client.Revoke(rctx, lease)
			cancel()
		}
	}()
	write := func() {
		retry = nil
		if latest == nil || (written != nil && reflect.DeepEqual(*latest, *written)) {
			return
		}
		now := time.Now()
		tokens = min(publishBurst, tokens+float64(now.Sub(refilled))/float64(every))
		refilled = now
		if need := acknowledgement(latest, written); tokens < need {
			retry = time.After(time.Duration((need - tokens) * float64(every)))
			return
		}
		if lease == 0 {
			g, err := p.Client.Grant(ctx, int64(max(p.TTL/time.Second, 1)))
			if err == nil {
				var ka <-chan *clientv3.LeaseKeepAliveResponse
				if ka, err = p.Client.KeepAlive(ctx, g.ID); err == nil {
					lease, alive = g.ID, ka
				}
			}
			if err != nil {
				p.Log.Warn("fleet: cannot register this agent in etcd; retrying", "err", err)
				retry = time.After(time.Second)
				return
			}
		}
		val, err := json.Marshal(latest)
		if err != nil {
			p.Log.Error("fleet: encode agent", "err", err)
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = p.Client.Put(wctx, Key(p.Prefix, latest.Node), string(val), clientv3.WithLease(lease))
		cancel()
		tokens--
		if err != nil {
			p.Log.Warn("fleet: cannot update this agent in etcd; retrying", "err", err)
			retry = time.After(time.Second)
			return
		}
		a := *latest
		written = &a
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-updates:
			latest = &a
			write()
		case <-retry:
			write()
		case _, ok := <-alive:
			if !ok {
				// The lease expired (etcd unreachable past TTL) or was
				// revoked: register again with a new one.
				lease, alive, written = 0, nil, nil
				if ctx.Err() == nil {
					retry = time.After(time.Second)
				}
			}
		}
	}
}

// acknowledgement is the tokens a write needs: 1, or 1-burst when it
// carries an acknowledgement (a hold, an armed hold, a fence) the last
// write did not.
func acknowledgement(latest, written *Agent) float64 {
	if written == nil || !slices.Equal(latest.Holds, written.Holds) || !slices.Equal(latest.Armed, written.Armed) ||
		!maps.Equal(latest.Fenced, written.Fenced) {
		return 1 - publishBurst
	}
	return 1
}

// publishBurst is the rate limit's bucket: writes at once before the
// sustained rate applies.
const publishBurst = 3

// List reads every live agent (their keys exist while their leases do),
// by node, and the etcd revision of the read. A key under prefix that is
// not an agent's record is left out.
func List(ctx context.Context, cli *clientv3.Client, prefix string) (map[string]Agent, int64, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list pgsvc agents under %s: %w", prefix, err)
	}
	out := make(map[string]Agent, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		a, err := Parse(kv.Value)
		if err != nil {
			continue // not an agent's record (a hand-written key): no agent to account for
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = a
	}
	return out, resp.Header.Revision, nil
}

// Parse reads one agent record.
func Parse(value []byte) (Agent, error) {
	var a Agent
	if err := json.Unmarshal(value, &a); err != nil {
		return Agent{}, fmt.Errorf("not a pgsvc agent record: %w", err)
	}
	if a.Node == "" {
		return Agent{}, errors.New("agent record has no node")
	}
	return a, nil
}

// Nodes returns the map's nodes, sorted.
func Nodes(agents map[string]Agent) []string { return slices.Sorted(maps.Keys(agents)) }
