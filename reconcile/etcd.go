package reconcile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
)

// EtcdConfig is how pgsvc reaches etcd.
type EtcdConfig struct {
	Endpoints []string
	Username  string
	Password  string
	CACert    string
	Cert      string
	Key       string
	Timeout   time.Duration
}

// NewEtcdClient builds a client (TLS and user/password when configured).
func NewEtcdClient(cfg EtcdConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints (--etcd)")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	c := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.Timeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: cfg.Timeout,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(), // pgsvc logs etcd trouble itself, once per event
	}
	if cfg.CACert != "" || cfg.Cert != "" {
		t, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		c.TLS = t
	}
	cli, err := clientv3.New(c)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return cli, nil
}

func tlsConfig(cfg EtcdConfig) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no PEM certificate", cfg.CACert)
		}
		t.RootCAs = pool
	}
	if cfg.Cert != "" || cfg.Key != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// ListState reads pgsvc's prefixes once, at one revision: the Patroni
// namespace, pgsvc's overrides and the before_stop keys. Malformed values are reported and
// skipped (the rest of the state still counts; Put leaves state unchanged).
func ListState(ctx context.Context, cli *clientv3.Client, l dcs.Layout, log *slog.Logger) (*dcs.State, error) {
	resp, err := cli.Get(ctx, l.Namespace, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", l.Namespace, err)
	}
	st := dcs.NewState()
	st.Revision = resp.Header.Revision
	for _, kv := range resp.Kvs {
		if err := st.PutKV(l, kvOf(kv)); err != nil && log != nil {
			log.Warn("ignored malformed key", "err", err)
		}
	}
	for _, prefix := range []string{l.OverridePrefix, l.StopPrefix} {
		if prefix == "" {
			continue
		}
		more, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
		if err != nil {
			return nil, fmt.Errorf("etcd get %s: %w", prefix, err)
		}
		for _, kv := range more.Kvs {
			if err := st.PutKV(l, kvOf(kv)); err != nil && log != nil {
				log.Warn("ignored malformed key", "err", err)
			}
		}
	}
	return st, nil
}

func kvOf(kv *mvccpb.KeyValue) dcs.KV {
	return dcs.KV{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}
}

// watchRange is one key range covering both prefixes. One watch stream
// delivers every event in revision order, so a response's header revision
// is exactly what the state includes; two streams (one per prefix) would
// let one run ahead of the other. Keys in the range outside both prefixes
// are ignored by dcs.State.
func watchRange(l dcs.Layout) (start, end string) {
	start, end = l.Namespace, clientv3.GetPrefixRangeEnd(l.Namespace)
	for _, prefix := range []string{l.OverridePrefix, l.StopPrefix} {
		if prefix == "" {
			continue
		}
		start = min(start, prefix)
		end = max(end, clientv3.GetPrefixRangeEnd(prefix))
	}
	return start, end
}

// EtcdSource lists then watches Patroni's namespace and the overrides, the
// way Patroni does: one range read, then a watch from that revision + 1. A
// compaction or a lost watch re-lists; failures retry with capped backoff.
type EtcdSource struct {
	Client *clientv3.Client
	Layout dcs.Layout
	Log    *slog.Logger
	// ProbeInterval is how often a live watch checks that etcd answers (default 1s).
	ProbeInterval time.Duration
	// Error is called for every lost watch and malformed value (metrics); may be nil.
	Error func(err error)
	// Ready is called when the watch becomes current or stops being so; may be nil.
	Ready func(ready bool)
}

func (s *EtcdSource) setReady(in *Inputs, ready bool) {
	in.SetEtcdReady(ready)
	if s.Ready != nil {
		s.Ready(ready)
	}
}

func (s *EtcdSource) probeInterval() time.Duration {
	if s.ProbeInterval > 0 {
		return s.ProbeInterval
	}
	return time.Second
}

func (s *EtcdSource) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*s.probeInterval())
	defer cancel()
	if _, err := s.Client.Get(ctx, s.Layout.Namespace, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd probe: %w", err)
	}
	return nil
}

// Run feeds in until ctx ends.
func (s *EtcdSource) Run(ctx context.Context, in *Inputs) error {
	b := newBackoff(200*time.Millisecond, 10*time.Second)
	for {
		listed, err := s.listAndWatch(ctx, in)
		if ctx.Err() != nil {
			return nil
		}
		if listed {
			b.reset() // etcd answered since the last failure: a new loss starts short
		}
		s.setReady(in, false)
		if s.Error != nil {
			s.Error(err)
		}
		d := b.next()
		s.Log.Warn("etcd watch lost, HAProxy left as it is; re-listing", "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// listAndWatch lists the namespace and watches it until the watch fails;
// listed says whether the list succeeded.
func (s *EtcdSource) listAndWatch(ctx context.Context, in *Inputs) (listed bool, err error) {
	listCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := ListState(listCtx, s.Client, s.Layout, s.Log)
	cancel()
	if err != nil {
		return false, err
	}
	in.ReplaceState(st)
	if s.Ready != nil {
		s.Ready(true)
	}
	s.Log.Info("etcd listed", "revision", st.Revision, "clusters", len(st.Clusters), "overrides", len(st.Overrides))
	watchCtx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	// The client retries a dead endpoint silently, and creating a watch
	// blocks while etcd is unreachable: a probe running beside it ends the
	// watch (even one still being created) so pgsvc stops applying until
	// etcd answers again.
	probeFailed := make(chan error, 1)
	go func() {
		t := time.NewTicker(s.probeInterval())
		defer t.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-t.C:
			}
			if err := s.probe(watchCtx); err != nil && watchCtx.Err() == nil {
				probeFailed <- err
				stop()
				return
			}
		}
	}()
	start, end := watchRange(s.Layout)
	events := s.Client.Watch(watchCtx, start, clientv3.WithRange(end), clientv3.WithRev(st.Revision+1))
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case err := <-probeFailed:
			return true, err
		case resp, ok = <-events:
		}
		if !ok {
			select {
			case err := <-probeFailed:
				return true, err
			default:
				return true, errors.New("watch channel closed")
			}
		}
		if resp.CompactRevision != 0 {
			return true, fmt.Errorf("watch compacted at revision %d", resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return true, fmt.Errorf("watch: %w", err)
		}
		if len(resp.Events) > 0 {
			s.apply(in, resp)
		}
	}
}

// apply records one watch response; a burst of events in one response is
// one update and one wake-up.
func (s *EtcdSource) apply(in *Inputs, resp clientv3.WatchResponse) {
	in.Update(resp.Header.Revision, func(st *dcs.State) (clusters map[string]Cause, instances []string) {
		clusters = map[string]Cause{}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			if inst, ok := strings.CutPrefix(key, s.Layout.OverridePrefix); ok {
				instances = append(instances, inst)
			} else if scope, ok := s.Layout.StopScope(key); ok {
				if _, seen := clusters[scope]; !seen {
					clusters[scope] = CauseHold
				}
			} else if !strings.HasPrefix(key, s.Layout.Namespace) {
				continue // in the watched range, outside both prefixes
			} else if scope, rest, found := strings.Cut(strings.TrimPrefix(key, s.Layout.Namespace), "/"); found {
				if rest == "leader" {
					clusters[scope] = CauseLeader
				} else if _, seen := clusters[scope]; !seen {
					clusters[scope] = CausePatroni
				}
			}
			if ev.Type == mvccpb.DELETE {
				st.Delete(s.Layout, key)
				continue
			}
			if err := st.PutKV(s.Layout, kvOf(ev.Kv)); err != nil {
				s.Log.Warn("ignored malformed value: the key counts as absent, as in a fresh list", "err", err)
				if s.Error != nil {
					s.Error(err)
				}
			}
		}
		return clusters, instances
	})
}
