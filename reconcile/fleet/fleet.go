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

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	// Ready and Reason are the agent's /readyz (Reporter.Ready); Reason
	// is empty when ready.
	Ready  bool     `json:"ready"`
	Reason string   `json:"reason,omitempty"`
	Holds  []string `json:"holds,omitempty"` // clusters holding new connections
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
	// Registered, when set, is told the outcome of every attempt to put
	// the record in etcd: nil once it is there, else why it is not (a
	// lease refused, the write refused, the lease lost). An agent that is
	// not registered is invisible to set --wait, drain --wait, fence and
	// status --fleet (pgsvc_agent_registered).
	Registered func(err error)
}

// Run publishes every Agent from updates until ctx ends. etcd failures
// are reported (Registered, and a warning when the error changes) and
// retried every second (a new lease when the old one was lost); they
// never stop the daemon.
func (p *Publisher) Run(ctx context.Context, updates <-chan Agent) error {
	s := &publishing{Publisher: p, every: p.MinInterval, tokens: publishBurst, refilled: time.Now()}
	if s.every <= 0 {
		s.every = 250 * time.Millisecond
	}
	defer s.revoke(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-updates:
			s.latest = &a
			s.write(ctx)
		case <-s.retry:
			s.write(ctx)
		case _, ok := <-s.alive:
			if !ok && ctx.Err() == nil {
				// The lease expired (etcd unreachable past TTL) or was
				// revoked: the record is gone; register again with a new one.
				s.report(fmt.Errorf("lease %x of %s expired or was revoked: the record is gone until it is written again", s.lease, Key(s.Prefix, s.node())))
				s.lease, s.alive, s.written = 0, nil, nil
				s.retry = time.After(time.Second)
			}
		}
	}
}

// publishing is one Run's state.
type publishing struct {
	*Publisher
	every           time.Duration
	latest, written *Agent
	lease           clientv3.LeaseID
	alive           <-chan *clientv3.LeaseKeepAliveResponse
	tokens          float64
	refilled        time.Time
	retry           <-chan time.Time
	failing         string // the registration error last logged; "" while registered
}

// write puts the latest record unless it is already there or the rate
// limit says to wait.
func (s *publishing) write(ctx context.Context) {
	s.retry = nil
	if s.latest == nil || (s.written != nil && reflect.DeepEqual(*s.latest, *s.written)) {
		return
	}
	now := time.Now()
	s.tokens = min(publishBurst, s.tokens+float64(now.Sub(s.refilled))/float64(s.every))
	s.refilled = now
	if need := acknowledgement(s.latest, s.written); s.tokens < need {
		s.retry = time.After(time.Duration((need - s.tokens) * float64(s.every)))
		return
	}
	err := s.put(ctx)
	if ctx.Err() != nil {
		return // stopping: not a registration failure
	}
	s.report(err)
	if err != nil {
		s.retry = time.After(time.Second)
		return
	}
	a := *s.latest
	s.written = &a
}

// put writes the latest record on the lease, granting one first.
func (s *publishing) put(ctx context.Context) error {
	if s.lease == 0 {
		if err := s.grant(ctx); err != nil {
			return err
		}
	}
	val, err := json.Marshal(s.latest)
	if err != nil {
		return fmt.Errorf("encode agent %s: %w", s.latest.Node, err)
	}
	key := Key(s.Prefix, s.latest.Node)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s.tokens--
	if _, err := s.Client.Put(wctx, key, string(val), clientv3.WithLease(s.lease)); err != nil {
		return fmt.Errorf("put agent record %s: %w", key, err)
	}
	return nil
}

func (s *publishing) grant(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	g, err := s.Client.Grant(gctx, int64(max(s.TTL/time.Second, 1)))
	if err != nil {
		return fmt.Errorf("grant a %s lease for agent record %s: %w", s.TTL, Key(s.Prefix, s.node()), err)
	}
	ka, err := s.Client.KeepAlive(ctx, g.ID)
	if err != nil {
		return fmt.Errorf("keep lease %x of agent record %s alive: %w", g.ID, Key(s.Prefix, s.node()), err)
	}
	s.lease, s.alive = g.ID, ka
	return nil
}

// report hands the outcome of a write to Registered and logs a failure
// once per distinct error (the retries are counted, not logged), and the
// recovery.
func (s *publishing) report(err error) {
	if s.Registered != nil {
		s.Registered(err)
	}
	switch {
	case err == nil && s.failing != "":
		s.failing = ""
		s.Log.Info("fleet: this agent is registered in etcd again", "key", Key(s.Prefix, s.node()))
	case err != nil && err.Error() != s.failing:
		s.failing = err.Error()
		args := []any{"err", err, "retry_every", time.Second}
		if errors.Is(err, rpctypes.ErrPermissionDenied) {
			args = append(args, "needs", fmt.Sprintf("read-write permission on the key prefix %s for this agent's etcd user "+
				"(etcdctl role grant-permission --prefix=true <its role> readwrite %s)", s.Prefix, s.Prefix))
		}
		s.Log.Warn("fleet: cannot register this agent in etcd: set --wait, drain --wait, fence and status --fleet do not see it "+
			"(HAProxy is served all the same); retrying", args...)
	}
}

// revoke, on a clean stop, removes the record now rather than at the
// lease's expiry.
func (s *publishing) revoke(ctx context.Context) {
	if s.lease == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _ = s.Client.Revoke(rctx, s.lease) // the lease expires anyway
}

func (s *publishing) node() string {
	if s.latest == nil {
		return ""
	}
	return s.latest.Node
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
