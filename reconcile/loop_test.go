package reconcile

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// recordingHAProxy records what a pass asks of HAProxy. The fault under
// test is in the inputs, not in HAProxy, so no HAProxy is needed here; the
// lab tests cover the real one.
type recordingHAProxy struct {
	services []string
	scope    map[string]bool
	calls    int
}

func (h *recordingHAProxy) Apply(_ context.Context, services []Service, clusters map[string]bool, _ map[string]Accel, _ bool) (Report, error) {
	h.calls++
	h.services, h.scope = nil, clusters
	for _, s := range services {
		h.services = append(h.services, s.Name)
	}
	return Report{}, nil
}

// TestBrokenClusterIsLeftAlone: live data (an override written straight to
// etcd) that breaks one cluster's selector leaves that cluster's services
// as they are, while the other clusters are still reconciled, and the pass
// never treats the broken cluster's files as stale.
func TestBrokenClusterIsLeftAlone(t *testing.T) {
	inv, err := selector.ParseInventory("inv.yml", []byte(`all:
  children:
    pg-a:
      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary, pg_zone: a }, 10.0.0.2: { pg_seq: 2, pg_role: replica, pg_zone: b } }
      vars:
        pg_cluster: pg-a
        pg_default_services: [ { name: zoned, port: 5440, selector: "sort_by(@, &pg_zone)" } ]
    pg-b:
      hosts: { 10.0.1.1: { pg_seq: 1, pg_role: primary } }
      vars: { pg_cluster: pg-b, pg_default_services: [ { name: primary, port: 5433, selector: "[]" } ] }
`))
	require.NoError(t, err)
	model, err := selector.NewModel(inv)
	require.NoError(t, err)
	in := NewInputs("", nil)
	require.NoError(t, in.SetModel(model))
	st := dcs.NewState()
	l := dcs.DefaultLayout()
	require.NoError(t, st.Put(l, l.OverridePrefix+"pg-a-2", []byte(`{"pg_zone": 7}`)), "valid on its own")
	in.ReplaceState(st)
	in.SetEtcdReady(true)

	h := &recordingHAProxy{}
	r := &Reconciler{In: in, Log: slog.New(slog.DiscardHandler), HAProxy: h}
	_, err = r.Pass(context.Background(), false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cluster pg-a: inv.yml:")
	assert.Equal(t, 1, h.calls, "the healthy cluster is still reconciled")
	assert.Equal(t, []string{"pg-b-primary"}, h.services)
	assert.Equal(t, map[string]bool{"pg-b": true}, h.scope, "a scoped pass: pg-a's files are not stale")
}

// A missing inventory file is reported once (and counted once) until the
// failure changes; the last good model stays in force.
func TestInventoryReadFailureReportedOnce(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/inventory.yml"
	require.NoError(t, os.WriteFile(path, []byte("all:\n  children:\n    pg-a:\n      hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-a }\n"), 0o644))
	var logs bytes.Buffer
	failures := 0
	src := &InventorySource{Path: path, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Result: func(err error) {
			if err != nil {
				failures++
			}
		}}
	in := NewInputs("", nil)
	require.NoError(t, src.Load(in, false))
	require.NoError(t, os.Remove(path))
	for i := 0; i < 5; i++ {
		assert.Error(t, src.Load(in, false))
	}
	assert.Equal(t, 1, failures)
	assert.Equal(t, 1, strings.Count(logs.String(), "inventory rejected"))
	model, _ := in.Model()
	assert.NotNil(t, model, "the last good model stays")
	require.NoError(t, os.WriteFile(path, []byte("all: [broken\n"), 0o644))
	assert.Error(t, src.Load(in, false), "a new failure is reported again")
	assert.Equal(t, 2, failures)
}

// failingHAProxy fails every pass with err.
type failingHAProxy struct{ err error }

func (h failingHAProxy) Apply(context.Context, []Service, map[string]bool, map[string]Accel, bool) (Report, error) {
	return Report{}, h.err
}

// Pins two defects of the gate that holds passes back while HAProxy is
// unreachable: it caught every whole-pass error (a file HAProxy rejects, a
// failed reload), delaying every cluster's switchover behind one backoff;
// and once it had passed, a pass that took no work left it set, so the
// loop's timer fired at once, forever (a busy loop).
func TestGateOnlyForUnreachableHAProxy(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		gate bool
	}{
		{"socket refused: every pass waits", &UnreachableError{Err: errors.New("dial unix /run/haproxy/admin.sock: connect: connection refused")}, true},
		{"reload failed after the runtime converged: the full pass retries, events go on", errors.New("reload haproxy: master socket timeout"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := brokenLab(t)
			r := &Reconciler{In: in, Log: slog.New(slog.DiscardHandler), HAProxy: failingHAProxy{tc.err}}
			_, err := r.Pass(context.Background(), false)
			require.Error(t, err)
			assert.Equal(t, tc.gate, !r.gate.IsZero(), "gate")
			assert.Empty(t, r.retries, "no per-cluster retries: the failure was not theirs")
			assert.Equal(t, !tc.gate, r.fullRetry != nil && !r.fullRetry.at.IsZero(), "the full pass retried whole, on its own backoff")
			if !tc.gate {
				return
			}
			r.gate = time.Now().Add(-time.Second) // the gate passed; no pass took work since
			assert.Nil(t, r.retryTimer(), "a passed gate is not waited for")
		})
	}
}

// brokenLab is two clusters' inputs, ready, with no HAProxy.
func brokenLab(t *testing.T) (*Inputs, *selector.Model) {
	t.Helper()
	inv, err := selector.ParseInventory("inv.yml", []byte(`all:
  children:
    pg-a: { hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-a } }
    pg-b: { hosts: { 10.0.1.1: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-b } }
`))
	require.NoError(t, err)
	model, err := selector.NewModel(inv)
	require.NoError(t, err)
	in := NewInputs("", nil)
	require.NoError(t, in.SetModel(model))
	in.ReplaceState(dcs.NewState())
	return in, model
}
