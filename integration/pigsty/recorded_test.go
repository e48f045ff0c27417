package pigsty

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
	"github.com/pgsvc/pgsvc/selector"
)

// TestPigstyRecorded renders each inventory under testdata/ with pgsvc and
// requires what Pigsty's own template rendered for it (recorded by
// `make pigsty-record PIGSTY=...` with ansible-core and python3-jmespath,
// so this test needs neither): the same listen sections, or a refusal
// where Pigsty's render failed. Each case is one class of input where
// Ansible's reading or Python jmespath's semantics differ from a naive one.
func TestPigstyRecorded(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/inventory.yml")
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	for _, inv := range cases {
		dir := filepath.Dir(inv)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, refused := readRecorded(t, filepath.Join(dir, recordedFile))
			got, err := renderPgsvc(t, inv)
			// pgsvc-error.txt: what pgsvc's refusal says, where Pigsty
			// refused too or where pgsvc refuses on purpose what Pigsty
			// renders (README: what differs from Pigsty).
			expect, err2 := os.ReadFile(filepath.Join(dir, "pgsvc-error.txt"))
			if err2 != nil && !os.IsNotExist(err2) {
				require.NoError(t, err2)
			}
			if refused != "" || expect != nil {
				require.Error(t, err, "Pigsty refused this inventory (%q) or pgsvc-error.txt says pgsvc must; pgsvc must not serve it", refused)
				if expect != nil {
					require.Contains(t, err.Error(), strings.TrimSpace(string(expect)), "pgsvc's error")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, sortedKeys(want), sortedKeys(got), "service files")
			for name, w := range want {
				require.Equal(t, w, got[name], "%s", name)
			}
		})
	}
}

// recordedFile holds Pigsty's output for one case: a header line, then
// each rendered file after a "=== name" line, or one "refused: why" line.
const recordedFile = "pigsty-render.txt"

func readRecorded(t *testing.T, path string) (map[string]listen, string) {
	data, err := os.ReadFile(path)
	require.NoError(t, err, "record it: make pigsty-record PIGSTY=/path/to/pigsty")
	out := map[string]listen{}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" {
			out[name] = parseListen(t, []byte(body.String()))
		}
		body.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "refused: "):
			return nil, strings.TrimSpace(strings.TrimPrefix(line, "refused: "))
		case strings.HasPrefix(line, "=== "):
			flush()
			name = strings.TrimSpace(strings.TrimPrefix(line, "=== "))
		case name != "":
			body.WriteString(line)
		}
	}
	flush()
	return out, ""
}

// renderPgsvc renders what pgsvc --node serves on each host the playbook
// renders on (the render group: a member of each cluster, which renders its
// own cluster from its own variables, as Pigsty's service_local does) and
// on each host of the proxy group (remote services, pg_service_provider:
// from the primary's variables, as service_remote does; the playbook
// renders such a cluster on its primary).
func renderPgsvc(t *testing.T, inventory string) (map[string]listen, error) {
	model, err := selector.Load(inventory)
	if err != nil {
		return nil, err
	}
	got := map[string]listen{}
	nodes := append(slices.Clone(model.Inventory.Groups["render"]), model.Inventory.Groups["proxy"]...)
	for _, node := range nodes {
		clusters, err := model.Select(node, nil)
		if err != nil {
			return nil, err
		}
		d, err := reconcile.Compute(clusters, reconcile.Live{}, false)
		if err != nil {
			return nil, err
		}
		files, err := dataplaneapi.Files(&d, dataplaneapi.LayoutService)
		if err != nil {
			return nil, err
		}
		for name, data := range files {
			got[name] = parseListen(t, data)
		}
	}
	return got, nil
}

// listen is a listen section reduced to what HAProxy acts on: directives in
// order, the enabled servers (a disabled pgsvc slot is not a server for
// traffic) keyed by name with their parameters normalized, and the order
// that decides traffic: backups (HAProxy uses the first usable one) and,
// with `balance first`, the active servers.
type listen struct {
	directives []string
	servers    map[string]string
	backups    []string
	actives    []string
}

func parseListen(t *testing.T, data []byte) listen {
	l := listen{servers: map[string]string{}}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "load-server-state-from-file" {
			continue // pgsvc's: health kept across its reloads, no routing of its own
		}
		if f[0] != "server" {
			l.directives = append(l.directives, strings.Join(f, " "))
			continue
		}
		require.GreaterOrEqual(t, len(f), 3, "server line %q", line)
		params := f[3:]
		if len(params) > 0 && params[len(params)-1] == "disabled" {
			continue
		}
		name := strings.TrimSuffix(f[1], dataplaneapi.BackupSuffix)
		_, dup := l.servers[name]
		require.False(t, dup, "server %s enabled twice", name)
		l.servers[name] = f[2] + " " + strings.Join(params, " ")
		if slices.Contains(params, "backup") {
			l.backups = append(l.backups, name)
		} else {
			l.actives = append(l.actives, name)
		}
	}
	if !slices.Contains(l.directives, "balance first") {
		l.actives = nil
	}
	return l
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
