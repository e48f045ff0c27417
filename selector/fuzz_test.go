package selector_test

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pgsvc/pgsvc/selector"
	"github.com/pgsvc/pgsvc/selector/jmes"
)

// Native Go fuzzing of the inventory and selector paths. The seed corpora
// live in testdata/fuzz/<FuzzName>/ (the real fixtures/inventory files, the
// Pigsty default selectors, known-bad shapes); `go test` runs them as
// regular cases, `go test -run FuzzX -fuzz FuzzX` explores from them.

const fuzzPath = "inv.yml"

// requireInputError fails unless err is bad input whose message names the
// inventory file, as every CLI error line must.
func requireInputError(t *testing.T, what string, err error, wantPrefix string) {
	t.Helper()
	if !selector.IsInputError(err) {
		t.Fatalf("%s: error is not a *selector.InputError: %T %v", what, err, err)
	}
	if wantPrefix != "" && !strings.HasPrefix(err.Error(), wantPrefix) {
		t.Fatalf("%s: error does not start with %q: %v", what, wantPrefix, err)
	}
}

// FuzzInventory: ParseInventory + NewModel never panic on any bytes, every
// error is a *selector.InputError naming the file, and whatever is accepted
// is deterministic, re-validates, and holds the model's invariants.
func FuzzInventory(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := selector.ParseInventory(fuzzPath, data)
		if err != nil {
			requireInputError(t, "ParseInventory", err, fuzzPath)
			return
		}
		checkInventory(t, inv)
		m, err := selector.NewModel(inv)
		if err != nil {
			requireInputError(t, "NewModel", err, fuzzPath)
			// Deterministic: the same bytes are refused with the same message.
			inv2, err2 := selector.ParseInventory(fuzzPath, data)
			if err2 != nil {
				t.Fatalf("re-parse of accepted bytes failed: %v", err2)
			}
			if _, err3 := selector.NewModel(inv2); err3 == nil || err3.Error() != err.Error() {
				t.Fatalf("NewModel is not deterministic: %v, then %v", err, err3)
			}
			return
		}
		checkModel(t, m)
		// Re-validation: the same inventory (and a fresh parse of the same
		// bytes) builds the same model again.
		for _, again := range []func() (*selector.Inventory, error){
			func() (*selector.Inventory, error) { return inv, nil },
			func() (*selector.Inventory, error) { return selector.ParseInventory(fuzzPath, data) },
		} {
			inv2, err := again()
			if err != nil {
				t.Fatalf("re-parse of an accepted inventory failed: %v", err)
			}
			m2, err := selector.NewModel(inv2)
			if err != nil {
				t.Fatalf("an accepted inventory does not re-validate: %v", err)
			}
			if got, want := modelSummary(m2), modelSummary(m); got != want {
				t.Fatalf("model differs on re-validation:\n%s\nvs\n%s", got, want)
			}
		}
		// The static view evaluates or fails as bad input, never a panic.
		for _, c := range m.Clusters {
			records := c.Records(selector.ClusterLive{}, nil)
			for _, s := range c.Services {
				picks, err := s.Evaluate(records)
				if err != nil {
					requireEvaluateError(t, err, c.Name, s.Name)
					continue
				}
				checkPicks(t, c, picks)
			}
		}
		// Selecting every cluster fails when there is none, or as bad
		// input when a cluster's services do not build from its primary's
		// variables (they are nil then); so does selecting a node's.
		if _, err := m.Select("", nil); err != nil {
			requireInputError(t, "Select", err, fuzzPath)
			broken := len(m.Clusters) == 0
			for _, c := range m.Clusters {
				broken = broken || c.Services == nil
			}
			if !broken {
				t.Fatalf("Select of every cluster (%d clusters, services built): %v", len(m.Clusters), err)
			}
		}
		for _, h := range inv.Hosts {
			carried, err := m.Select(h.Name, nil)
			if err != nil {
				requireInputError(t, "Select --node "+h.Name, err, fuzzPath)
				continue
			}
			for _, c := range carried {
				checkCluster(t, c)
			}
		}
	})
}

// requireEvaluateError: an evaluation error is bad input naming the file
// (and the definition's line when it has one), the cluster and the service.
func requireEvaluateError(t *testing.T, err error, cluster, service string) {
	t.Helper()
	requireInputError(t, "Evaluate", err, fuzzPath)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(fuzzPath) + `(:\d+)?: cluster ` + regexp.QuoteMeta(cluster+" service "+service+": ")).MatchString(err.Error()) {
		t.Fatalf("Evaluate: error does not start with file[:line]: cluster %s service %s: %v", cluster, service, err)
	}
}

func checkInventory(t *testing.T, inv *selector.Inventory) {
	t.Helper()
	seen := map[string]bool{}
	for _, h := range inv.Hosts {
		if h.Name == "" {
			t.Fatal("accepted a host without a name")
		}
		if seen[h.Name] {
			t.Fatalf("host %q listed twice in Hosts", h.Name)
		}
		seen[h.Name] = true
		if got, ok := inv.Host(h.Name); !ok || got != h {
			t.Fatalf("Host(%q) does not return the listed host", h.Name)
		}
		if h.Vars["inventory_hostname"] != h.Name {
			t.Fatalf("host %q: inventory_hostname is %v", h.Name, h.Vars["inventory_hostname"])
		}
		checkJSONLike(t, h.Name, h.Vars)
	}
}

// checkJSONLike: records hold only what JMESPath understands.
func checkJSONLike(t *testing.T, where string, v any) {
	t.Helper()
	switch x := v.(type) {
	case nil, string, bool, float64, int64:
	case map[string]any:
		for k, e := range x {
			checkJSONLike(t, where+"."+k, e)
		}
	case *jmes.Object:
		for _, k := range x.Keys() {
			e, _ := x.Get(k)
			checkJSONLike(t, where+"."+k, e)
		}
	case []any:
		for i, e := range x {
			checkJSONLike(t, fmt.Sprintf("%s[%d]", where, i), e)
		}
	default:
		// yaml.v3 also decodes timestamps and !!binary; they compare as
		// opaque values, which is harmless, but ints must have become int64.
		switch x.(type) {
		case int, uint64, int32, uint32:
			t.Fatalf("%s: integer %T %v was not normalized to int64", where, x, x)
		}
	}
}

func checkModel(t *testing.T, m *selector.Model) {
	t.Helper()
	for i, c := range m.Clusters {
		if i > 0 && m.Clusters[i-1].Name >= c.Name {
			t.Fatalf("clusters not sorted/unique: %q then %q", m.Clusters[i-1].Name, c.Name)
		}
		if got, ok := m.Cluster(c.Name); !ok || got != c {
			t.Fatalf("Cluster(%q) does not return the listed cluster", c.Name)
		}
		checkCluster(t, c)
	}
}

// checkCluster: the invariants of a cluster a render gets.
func checkCluster(t *testing.T, c *selector.Cluster) {
	t.Helper()
	if len(c.Members) == 0 {
		t.Fatalf("cluster %s has no members", c.Name)
	}
	primaries, seqs := 0, map[string]bool{}
	for _, h := range c.Members {
		if h.Vars["pg_role"] == "primary" {
			primaries++
		}
		seq := selector.Seq(h.Vars)
		if seqs[seq] {
			t.Fatalf("cluster %s: duplicate pg_seq %s accepted", c.Name, seq)
		}
		seqs[seq] = true
	}
	if primaries != 1 {
		t.Fatalf("cluster %s accepted with %d primaries", c.Name, primaries)
	}
	ports, names := map[int]bool{}, map[string]bool{}
	for _, s := range c.Services {
		if s.Name == "" || s.Selector == nil || s.Port < 1 || s.Port > 65535 {
			t.Fatalf("cluster %s: incomplete service %+v", c.Name, s)
		}
		if ports[s.Port] || names[s.Name] {
			t.Fatalf("cluster %s: duplicate service %s / port %d accepted", c.Name, s.Name, s.Port)
		}
		ports[s.Port], names[s.Name] = true, true
		if s.Schema != 1 && s.Schema != 2 {
			t.Fatalf("service %s: schema %d", s.FullName(), s.Schema)
		}
	}
}

func checkPicks(t *testing.T, c *selector.Cluster, picks []selector.Pick) {
	t.Helper()
	members := map[string]bool{}
	for _, h := range c.Members {
		members[h.Name] = true
	}
	seen := map[string]bool{}
	for _, p := range picks {
		h, _ := p.Record["inventory_hostname"].(string)
		if !members[h] {
			t.Fatalf("cluster %s: picked %q, not a member", c.Name, h)
		}
		if seen[h] {
			t.Fatalf("cluster %s: %q picked twice", c.Name, h)
		}
		seen[h] = true
	}
}

// modelSummary is a comparable rendering of everything NewModel decided.
func modelSummary(m *selector.Model) string {
	var b strings.Builder
	for _, c := range m.Clusters {
		fmt.Fprintf(&b, "cluster %s provider=%q\n", c.Name, c.Provider)
		for _, h := range c.Members {
			fmt.Fprintf(&b, "  member %s seq=%s\n", h.Name, selector.Seq(h.Vars))
		}
		for _, s := range c.Services {
			backup := ""
			if s.Backup != nil {
				backup = s.Backup.Src
			}
			fmt.Fprintf(&b, "  service %s v%d %s:%d sel=%q backup=%q dest=%s check=%v %q %d %+v maxconn=%d balance=%q options=%q\n",
				s.Name, s.Schema, s.IP, s.Port, s.Selector.Src, backup, s.Dest, s.HTTPCheck, s.CheckURI, s.CheckCode,
				s.CheckPort, s.Maxconn, s.Balance, s.Options)
		}
	}
	return b.String()
}

// selectorInventory builds a valid inventory whose custom service uses the
// fuzzed expressions (YAML-encoded, so any string survives quoting).
func selectorInventory(t *testing.T, sel, backup string) []byte {
	t.Helper()
	svc := map[string]any{"name": "fuzz", "port": 5440, "selector": sel}
	if backup != "" {
		svc["backup"] = backup
	}
	doc := map[string]any{"all": map[string]any{"children": map[string]any{
		"pg-test": map[string]any{
			"hosts": map[string]any{
				"10.10.10.11": map[string]any{"pg_seq": 1, "pg_role": "primary", "pg_weight": 100},
				"10.10.10.12": map[string]any{"pg_seq": 2, "pg_role": "replica", "pg_offline_query": false, "tags": []any{"a", 1}},
				"10.10.10.13": map[string]any{"pg_seq": 3, "pg_role": "offline", "pg_offline_query": true, "meta": map[string]any{"dc": "x", "n": 2.5}},
			},
			"vars": map[string]any{"pg_cluster": "pg-test", "pg_services": []any{svc}},
		},
	}}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Skipf("expression not representable in YAML: %v", err)
	}
	return data
}

// FuzzSelector compiles arbitrary selector and backup expressions through the
// service path (inventory -> NewModel) and evaluates them over the static and
// the live view. Nothing panics; every failure is bad input naming the
// service; whatever is picked is a cluster member, once.
func FuzzSelector(f *testing.F) {
	f.Fuzz(func(t *testing.T, sel, backup string) {
		data := selectorInventory(t, sel, backup)
		inv, err := selector.ParseInventory(fuzzPath, data)
		if err != nil {
			t.Skipf("yaml round trip refused: %v", err) // not the selector path
		}
		got, _ := inv.Hosts[0].Vars["pg_services"].([]any)
		var svc *jmes.Object
		if len(got) == 1 {
			svc, _ = got[0].(*jmes.Object)
		}
		if svc == nil {
			t.Fatalf("pg_services is not one mapping: %#v", got)
		}
		if v, _ := svc.Get("selector"); !reflect.DeepEqual(v, sel) {
			t.Skip("selector did not survive the YAML round trip")
		}
		m, err := selector.NewModel(inv)
		if err != nil {
			t.Fatalf("NewModel refused the members: %v", err)
		}
		if _, err = m.Select("", nil); err != nil {
			requireInputError(t, "Select", err, fuzzPath+":")
			if !strings.Contains(err.Error(), "cluster pg-test service fuzz") {
				t.Fatalf("error does not name the service: %v", err)
			}
			return
		}
		c, _ := m.Cluster("pg-test")
		live := selector.ClusterLive{Leader: "pg-test-2", Members: map[string]selector.Member{
			"pg-test-1": {Role: "replica", State: "running"},
			"pg-test-2": {Role: "primary", State: "running", Tags: map[string]any{"nofailover": false}},
		}}
		overrides := selector.Overrides{"pg-test-3": {"pg_weight": 20.0, "pg_offline_query": false, "pg_role": "replica"}}
		views := [][]selector.Record{
			c.Records(selector.ClusterLive{}, nil),
			c.Records(live, overrides),
		}
		for _, s := range c.Services {
			for _, records := range views {
				picks, err := s.Evaluate(records)
				if err != nil {
					requireEvaluateError(t, err, "pg-test", s.Name)
					continue
				}
				checkPicks(t, c, picks)
				again, err := s.Evaluate(records)
				if err != nil || !reflect.DeepEqual(picks, again) {
					t.Fatalf("Evaluate is not deterministic: %v / %v, %v", picks, again, err)
				}
			}
		}
		// Inventory hosts are never mutated by the overlay.
		if c.Members[1].Vars["pg_role"] != "replica" || c.Members[2].Vars["pg_weight"] != nil {
			t.Fatalf("Records mutated the inventory: %v %v", c.Members[1].Vars, c.Members[2].Vars)
		}
	})
}
