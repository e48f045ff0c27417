package selector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/selector/jmes"
)

// TestAnsibleHostvars reads each inventory in testdata/ansible and requires
// every host, in Ansible's order, with exactly the variables Ansible itself
// gives it: recorded from ansible-core's hostvars by record.sh there (host
// keys with ports and ranges, group depth and ansible_group_priority,
// parents defined after children, YAML 1.1 scalars). Types count: 1 and
// 1.0 and "1" differ.
func TestAnsibleHostvars(t *testing.T) {
	invs, err := filepath.Glob("testdata/ansible/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, invs)
	for _, path := range invs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(strings.TrimSuffix(path, ".yml") + ".hostvars.json")
			require.NoError(t, err, "run testdata/ansible/record.sh")
			var rec struct {
				Hosts    []string          `json:"hosts_in_order"`
				Hostvars map[string]string `json:"hostvars"`
			}
			require.NoError(t, json.Unmarshal(data, &rec))
			inv, err := LoadInventory(path)
			require.NoError(t, err)
			var got []string
			for _, h := range inv.Hosts {
				got = append(got, h.Name)
			}
			require.Equal(t, rec.Hosts, got, "hosts in order")
			for _, h := range inv.Hosts {
				dec := json.NewDecoder(strings.NewReader(rec.Hostvars[h.Name]))
				dec.UseNumber()
				var want map[string]any
				require.NoError(t, dec.Decode(&want))
				assert.Equal(t, typed(want), typed(map[string]any(h.Vars)), "host %s", h.Name)
			}
		})
	}
}

// typed renders a value with its Python type: int 1, float 1.0, str "1".
func typed(v any) string {
	var b bytes.Buffer
	writeTyped(&b, v)
	return b.String()
}

func writeTyped(b *bytes.Buffer, v any) {
	switch t := v.(type) {
	case json.Number:
		if strings.ContainsAny(t.String(), ".eE") {
			f, _ := t.Float64()
			writeTyped(b, f)
			return
		}
		fmt.Fprintf(b, "int %s", t)
	case int64:
		fmt.Fprintf(b, "int %d", t)
	case float64:
		switch {
		case math.IsInf(t, 1):
			b.WriteString("float inf")
		case math.IsInf(t, -1):
			b.WriteString("float -inf")
		case math.IsNaN(t):
			b.WriteString("float nan")
		default:
			fmt.Fprintf(b, "float %s", strconv.FormatFloat(t, 'g', -1, 64))
		}
	case string:
		fmt.Fprintf(b, "str %q", t)
	case map[string]any:
		if f, ok := t["__float__"].(string); ok && len(t) == 1 { // record.sh's inf and nan
			fmt.Fprintf(b, "float %s", f)
			return
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{\n")
		for _, k := range keys {
			fmt.Fprintf(b, "%q: ", k)
			writeTyped(b, t[k])
			b.WriteString("\n")
		}
		b.WriteString("}")
	case *jmes.Object: // ordered; the recording sorts keys (json.dumps sort_keys)
		m := map[string]any{}
		for _, k := range t.Keys() {
			m[k], _ = t.Get(k)
		}
		writeTyped(b, m)
	case []any:
		b.WriteString("[")
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writeTyped(b, e)
		}
		b.WriteString("]")
	default:
		fmt.Fprintf(b, "%T %v", t, t)
	}
}
