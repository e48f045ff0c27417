package reconcile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pgsvc/pgsvc/reconcile/dcs"
)

// FuzzParseAssignments: `pgsvc set` arguments (key=value, YAML scalar
// values) never panic; what is accepted passes CheckOverride and is exactly
// what the daemon will read back from etcd (EncodeOverride -> ParseOverride).
// Seed corpus: testdata/fuzz/FuzzParseAssignments/.
func FuzzParseAssignments(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		args := []string{a}
		if b != "" {
			args = append(args, b)
		}
		vars, err := ParseAssignments(args)
		if err != nil {
			if vars != nil {
				t.Fatalf("error %v with partial vars %v", err, vars)
			}
			return
		}
		for _, arg := range args {
			k, _, _ := strings.Cut(arg, "=")
			if _, ok := vars[k]; !ok {
				t.Fatalf("%q accepted but %q not set: %v", arg, k, vars)
			}
		}
		for k, v := range vars {
			if err := dcs.CheckOverride(k, v); err != nil {
				t.Fatalf("accepted %s=%v that CheckOverride refuses: %v", k, v, err)
			}
		}
		data, err := dcs.EncodeOverride(vars)
		if err != nil {
			t.Fatalf("accepted %q but cannot store it: %v", args, err)
		}
		back, err := dcs.ParseOverride(data)
		if err != nil {
			t.Fatalf("accepted %q but the daemon refuses the stored %s: %v", args, data, err)
		}
		if !reflect.DeepEqual(back, vars) {
			t.Fatalf("stored %s reads back as %v, not %v", data, back, vars)
		}
	})
}
