package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// ParseAssignments reads `key=value` arguments; values are YAML scalars
// (true, 20, offline, "quoted"), as they would be written in the inventory.
func ParseAssignments(args []string) (map[string]any, error) {
	vars := map[string]any{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", a)
		}
		val, err := selector.ParseValue([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("%s: value %q: %v", k, v, err)
		}
		switch val.(type) {
		case map[string]any, []any:
			return nil, fmt.Errorf("%s: value %q must be a string, number or boolean", k, v)
		}
		if err := dcs.CheckOverride(k, val); err != nil {
			return nil, err
		}
		vars[k] = val
	}
	return vars, nil
}

// Instance finds the cluster of an instance name (<cluster>-<seq>).
func Instance(m *selector.Model, inst string) (*selector.Cluster, error) {
	for _, c := range m.Clusters {
		for _, h := range c.Members {
			if selector.InstanceName(c.Name, selector.Seq(h.Vars)) == inst {
				return c, nil
			}
		}
	}
	return nil, fmt.Errorf("unknown instance %s: not <pg_cluster>-<pg_seq> of any inventory host", inst)
}

// UpdateOverride merges set into (and removes unset from) an instance's
// overrides in etcd, atomically against concurrent writers. The result is
// checked against the model first: every service of the instance's cluster
// must still evaluate. It returns the instance's overrides after the change
// and the etcd revision of the write (what `pgsvc set --wait` waits for;
// 0 when nothing was written: an unset of what no override holds).
func UpdateOverride(ctx context.Context, cli *clientv3.Client, l dcs.Layout, m *selector.Model, inst string, set map[string]any, unset []string) (map[string]any, int64, error) {
	c, err := Instance(m, inst)
	if err != nil {
		return nil, 0, err
	}
	// A cluster whose services the inventory cannot build has none to
	// check the override against: refuse rather than check nothing.
	if _, err := m.Select("", []string{c.Name}); err != nil {
		return nil, 0, fmt.Errorf("override refused: %w", err)
	}
	key := l.OverridePrefix + inst
	for attempt := 0; attempt < 10; attempt++ {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return nil, 0, fmt.Errorf("etcd get %s: %w", key, err)
		}
		vars := map[string]any{}
		var modRev int64
		if len(resp.Kvs) > 0 {
			modRev = resp.Kvs[0].ModRevision
			if old, err := dcs.ParseOverride(resp.Kvs[0].Value); err == nil {
				vars = old
			}
		}
		for k, v := range set {
			vars[k] = v
		}
		for _, k := range unset {
			delete(vars, k)
		}
		if _, err := Compute([]*selector.Cluster{c}, Live{Overrides: selector.Overrides{inst: vars}}, false); err != nil {
			return nil, 0, fmt.Errorf("override refused: %w", err)
		}
		if len(vars) == 0 && len(resp.Kvs) == 0 {
			return vars, 0, nil // nothing stored, nothing to store: no write
		}
		var op clientv3.Op
		if len(vars) == 0 {
			op = clientv3.OpDelete(key)
		} else {
			data, err := dcs.EncodeOverride(vars)
			if err != nil {
				return nil, 0, err
			}
			op = clientv3.OpPut(key, string(data))
		}
		txn, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(op).Commit()
		if err != nil {
			return nil, 0, fmt.Errorf("etcd write %s: %w", key, err)
		}
		if txn.Succeeded {
			return vars, txn.Header.Revision, nil
		}
	}
	return nil, 0, fmt.Errorf("etcd write %s: too many concurrent updates", key)
}

// ListOverrides returns every instance's overrides, sorted by instance.
func ListOverrides(ctx context.Context, cli *clientv3.Client, l dcs.Layout) ([]string, map[string]map[string]any, error) {
	resp, err := cli.Get(ctx, l.OverridePrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("etcd get %s: %w", l.OverridePrefix, err)
	}
	out := map[string]map[string]any{}
	for _, kv := range resp.Kvs {
		inst := strings.TrimPrefix(string(kv.Key), l.OverridePrefix)
		vars, err := dcs.ParseOverride(kv.Value)
		if err != nil {
			vars = map[string]any{"<invalid>": err.Error()}
		}
		out[inst] = vars
	}
	names := make([]string, 0, len(out))
	for k := range out {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, out, nil
}
