package reconcile

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
)

// One watch stream covers every prefix, so a response's header revision
// is exactly what the state includes (two streams, one per prefix, let one
// run ahead of the other). The range must hold every key of both prefixes,
// whichever sorts first.
func TestWatchRangeCoversBothPrefixes(t *testing.T) {
	tests := []struct {
		layout dcs.Layout
		in     []string
	}{
		{dcs.DefaultLayout(), []string{"/pg/pg-test/leader", "/pg/pg-test/members/pg-test-1", "/pgsvc/overrides/pg-test-2", "/pgsvc/stopping/pg-test"}},
		{dcs.Layout{Namespace: "/pg/", OverridePrefix: "/pgsvc/overrides/", StopPrefix: "/0stop/"}, []string{"/pg/x/leader", "/pgsvc/overrides/x-1", "/0stop/x"}},
		{dcs.Layout{Namespace: "/pg/", OverridePrefix: "/pgsvc/overrides/", StopPrefix: "/zz/"}, []string{"/pg/x/leader", "/pgsvc/overrides/x-1", "/zz/x"}},
		{dcs.Layout{Namespace: "/service/", OverridePrefix: "/pgsvc/overrides/"}, []string{"/service/pg-a/leader", "/pgsvc/overrides/pg-a-1"}},
		{dcs.Layout{Namespace: "/pg/", OverridePrefix: "/a/overrides/"}, []string{"/pg/x/leader", "/a/overrides/x-1"}},
	}
	for _, tc := range tests {
		start, end := watchRange(tc.layout)
		for _, k := range tc.in {
			assert.True(t, k >= start && k < end, "%q in [%q, %q)", k, start, end)
		}
		first := min(tc.layout.Namespace, tc.layout.OverridePrefix)
		if tc.layout.StopPrefix != "" {
			first = min(first, tc.layout.StopPrefix)
		}
		assert.Equal(t, first, start, "nothing before the first prefix")
	}
}
