package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/metrics"
)

// Pins: `haproxy -c` ran over the whole conf dir and, when one cluster's
// new file failed it, the whole pass failed with no cluster named: every
// other cluster's structural change of that pass waited with it. Here
// cluster pg-a gains a member whose address is a DNS name that does not
// resolve (HAProxy 2.6 fails -c: "could not resolve address"), and pg-test
// gains a service, in one inventory write (one pass). pg-test's service
// is checked without pg-a's new files, written and reloaded; pg-a keeps
// its files, is named with HAProxy's reason, and retries alone.
func TestCheckRejectionStaysInItsCluster(t *testing.T) {
	a := local.StartMember(t, "127.0.0.1", true)
	aPorts := []int{local.FreePort(t, "127.0.0.1"), local.FreePort(t, "127.0.0.1")}
	clusterA := func(hosts string) string {
		return fmt.Sprintf(`    pg-a:
      hosts:
        localhost: { pg_seq: 1, pg_role: primary, pg_port: %d, pgbouncer_port: %d, patroni_port: %d }
%s      vars:
        pg_cluster: pg-a
        pg_default_services:
          - { name: primary, ip: 127.0.0.1, port: %d, dest: default, check: /primary, selector: "[]" }
          - { name: replica, ip: 127.0.0.1, port: %d, dest: default, check: /read-only, selector: "[]" }
`, a.Port, a.Port, a.CheckPort, hosts, aPorts[0], aPorts[1])
	}
	l := newLab(t, labOptions{clusters: clusterA(""), noStart: true})
	m := metrics.New()
	l.startWith(func(rec *reconcile.Reconciler, src *reconcile.EtcdSource) {
		rec.Observer = tee{l.obs, m}
		src.Error, src.Ready = m.EtcdError, m.EtcdReady
	})
	aFiles := func() map[string]string {
		out := map[string]string{}
		for name, data := range confFiles(t, l.hap.ConfDir) {
			if strings.HasPrefix(name, "pg-a-") {
				out[name] = data
			}
		}
		return out
	}
	before := aFiles()
	require.Len(t, before, 2, "pg-a's two service files")
	reloads := l.reloads()

	n := l.obs.count()
	l.others = clusterA(fmt.Sprintf("        pg-x.invalid: { pg_seq: 2, pg_role: replica, pg_port: %d, pgbouncer_port: %d, patroni_port: %d }\n",
		a.Port, a.Port, a.CheckPort))
	l.writeInventory("        pg_services: [ { name: extra, ip: 127.0.0.1, port: " + itoa(l.ports["extra"]) + ", dest: postgres, check: /sync, selector: \"[]\" } ]\n")
	p, err := l.obs.waitFrom(n, func(p reconcile.PassInfo) bool {
		_, a := p.Causes["pg-a"]
		_, b := p.Causes["pg-test"]
		return a && b
	}, 15*time.Second)
	require.NoError(t, err, "one pass takes the inventory change of both clusters")
	require.NoError(t, p.Err, "the pass as a whole did not fail")
	require.Error(t, p.ClusterErrors["pg-a"], "the rejected cluster is named")
	msg := p.ClusterErrors["pg-a"].Error()
	t.Logf("pg-a: %s", msg)
	assert.Contains(t, msg, "haproxy -c rejected")
	assert.Contains(t, msg, "could not resolve address 'pg-x.invalid'", "HAProxy's own reason")
	assert.Contains(t, msg, l.hap.ConfDir+"/pg-a-primary.cfg:", "the operator's file, not the staging copy")
	assert.NotContains(t, p.ClusterErrors, "pg-test")

	assert.True(t, p.Report.Reloaded, "the good cluster's change is reloaded in that pass")
	assert.Equal(t, []string{"service pg-test-extra added"}, p.Report.Reload, "and only it")
	assert.Equal(t, reloads+1, l.reloads())
	assert.Equal(t, "pg-test-1 pg-test-2 pg-test-3", l.enabled("extra"), "HAProxy runs pg-test's new service")
	assert.GreaterOrEqual(t, p.Applied["pg-test"], p.Revision, "pg-test converged")
	assert.Equal(t, before, aFiles(), "pg-a's files are as they were")
	aReplica, err := l.view.Backend(context.Background(), "pg-a-replica")
	require.NoError(t, err)
	assert.NotContains(t, aReplica.Slots, "pg-a-2", "nor does HAProxy run pg-a's new member")
	assert.Contains(t, aReplica.Slots, "pg-a-1", "it runs pg-a as before")

	ready, why := m.Ready()
	assert.False(t, ready)
	assert.Contains(t, why, "cluster pg-a: ")
	assert.Equal(t, 1.0, counter(t, m, `pgsvc_cluster_failing{cluster="pg-a"}`))
	assert.Equal(t, 0.0, counter(t, m, `pgsvc_cluster_failing{cluster="pg-test"}`))

	// pg-a's retry, on its own backoff, is refused again and reloads nothing.
	retry, err := l.obs.waitFrom(l.obs.count(), func(p reconcile.PassInfo) bool { _, a := p.Causes["pg-a"]; return a && !p.Full }, 15*time.Second)
	require.NoError(t, err, "pg-a retries")
	assert.Contains(t, retry.ClusterErrors["pg-a"].Error(), "could not resolve address 'pg-x.invalid'")
	assert.False(t, retry.Report.Reloaded)
	assert.Equal(t, reloads+1, l.reloads(), "no reload for a retry that brings nothing")
	assert.Equal(t, before, aFiles())
}
