package reconcile

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// An override is checked against the services it changes; a cluster whose
// services the inventory cannot build leaves nothing to check it against,
// so it is refused before etcd is touched (no client needed).
func TestOverrideRefusedWhenServicesDoNotBuild(t *testing.T) {
	inv, err := selector.ParseInventory("inv.yml", []byte("all:\n  children:\n    pg-test:\n      hosts:\n"+
		"        10.0.0.1: { pg_seq: 1, pg_role: primary }\n        10.0.0.2: { pg_seq: 2, pg_role: replica }\n"+
		"      vars:\n        pg_cluster: pg-test\n"+
		"        pg_services: [ { name: extra, port: 5440, dest: postgres, check: /replica, selector: \"[? \" } ]\n"))
	require.NoError(t, err)
	m, err := selector.NewModel(inv)
	require.NoError(t, err, "members are fine; the services are checked where they are used")
	_, _, err = UpdateOverride(context.Background(), nil, dcs.DefaultLayout(), m, "pg-test-2", map[string]any{"pg_weight": 50}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "override refused")
	assert.Contains(t, err.Error(), "extra")
}
