package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/integration/local"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/reconcile/dcs"
)

// pgsvc reads a real etcd that requires TLS client certificates and
// user/password authentication, as Pigsty v4 deploys it.
func TestEtcdTLSAndAuth(t *testing.T) {
	e := local.StartEtcdTLS(t, "pgsvc", "s3cret")
	admin := e.Client()
	defer admin.Close()
	p := local.NewPatroni(t, admin, "/pg/", "pg-test", map[string]string{"pg-test-1": "10.0.0.1"})
	p.Steady("pg-test-1", "pg-test-1")

	list := func(cfg reconcile.EtcdConfig) (*dcs.State, error) {
		cfg.Endpoints, cfg.Timeout = []string{e.Endpoint}, 2*time.Second
		cli, err := reconcile.NewEtcdClient(cfg)
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return reconcile.ListState(ctx, cli, dcs.DefaultLayout(), nil)
	}
	st, err := list(reconcile.EtcdConfig{CACert: e.TLS.CA, Cert: e.TLS.Cert, Key: e.TLS.Key, Username: "pgsvc", Password: "s3cret"})
	require.NoError(t, err)
	assert.Equal(t, "pg-test-1", st.Clusters["pg-test"].Leader)

	_, err = list(reconcile.EtcdConfig{CACert: e.TLS.CA, Cert: e.TLS.Cert, Key: e.TLS.Key, Username: "pgsvc", Password: "wrong"})
	assert.ErrorContains(t, err, "authentication failed")
	_, err = list(reconcile.EtcdConfig{CACert: e.TLS.CA, Username: "pgsvc", Password: "s3cret"})
	assert.Error(t, err, "no client certificate: refused")
	_, err = list(reconcile.EtcdConfig{CACert: "/nonexistent/ca.crt"})
	assert.ErrorContains(t, err, "etcd CA: open /nonexistent/ca.crt")
}
