package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// A valid base the bad inputs below break one thing at a time.
const goodInventory = `all:
  children:
    pg-test:
      hosts:
        10.10.10.11: { pg_seq: 1, pg_role: primary }
        10.10.10.12: { pg_seq: 2, pg_role: replica }
      vars:
        pg_cluster: pg-test
`

func withServices(services string) string {
	return goodInventory + "        pg_services:\n" + services
}

// runCLI runs pgsvc in-process and returns the exit code, stdout and stderr.
func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name      string
		inventory string
		state     string   // --state file content; "" = no --state
		args      []string // extra flags
		want      string   // substring of the one-line error
	}{
		{"malformed YAML names file and line", "all:\n  children:\n    pg-test: { hosts: [\n", "", nil, "inv.yml:3: malformed YAML"},
		{"empty file", "", "", nil, "inv.yml: inventory is empty"},
		{"top-level group not a mapping", "foo: 1\n", "", nil, "inv.yml:1: group foo must be a mapping of hosts, vars and children"},
		{"unknown group key", "all:\n  children:\n    pg-test:\n      host: {}\n", "", nil, `inv.yml:4: group pg-test: unknown key "host"`},
		{"invalid JMESPath", withServices("          - { name: broken, port: 5440, selector: \"[? pg_role == \" }\n"), "", nil,
			`cluster pg-test service broken selector: invalid JMESPath "[? pg_role == "`},
		{"selector not a list of hosts", withServices("          - { name: names, port: 5440, selector: \"[].inventory_hostname\" }\n"), "", nil,
			`cluster pg-test service names: selector "[].inventory_hostname" returned a list holding "10.10.10.11", want a list of hosts`},
		{"selector returns an object", withServices("          - { name: first, port: 5440, selector: \"[0]\" }\n"), "", nil,
			`service first: selector "[0]" returned a mapping, want a list of hosts`},
		{"backup not a list", withServices("          - { name: b, port: 5440, selector: \"[]\", backup: \"length(@)\" }\n"), "", nil,
			`service b: backup "length(@)" returned 2, want a list of hosts`},
		{"duplicate port", withServices("          - { name: extra, port: 5433, selector: \"[]\" }\n"), "", nil,
			"cluster pg-test: services primary and extra both use port 5433"},
		{"missing pg_seq", strings.Replace(goodInventory, "pg_seq: 2, ", "", 1), "", nil, "cluster pg-test host 10.10.10.12: missing pg_seq"},
		{"duplicate pg_seq", strings.Replace(goodInventory, "pg_seq: 2", "pg_seq: 1", 1), "", nil,
			"host 10.10.10.12 (cluster pg-test): duplicate pg_seq 1, also used by host 10.10.10.11"},
		{"pg_seq not an integer", strings.Replace(goodInventory, "pg_seq: 2", "pg_seq: two", 1), "", nil, `pg_seq "two" is not a non-negative integer`},
		{"missing pg_role", strings.Replace(goodInventory, ", pg_role: replica", "", 1), "", nil, "cluster pg-test host 10.10.10.12: missing pg_role"},
		{"unknown pg_role", strings.Replace(goodInventory, "pg_role: replica", "pg_role: follower", 1), "", nil, `pg_role "follower" is not one of`},
		{"two primaries", strings.Replace(goodInventory, "pg_role: replica", "pg_role: primary", 1), "", nil,
			"cluster pg-test must have exactly one pg_role primary, has 2 (10.10.10.11, 10.10.10.12)"},
		{"service without port", withServices("          - { name: noport, selector: \"[]\" }\n"), "", nil, "cluster pg-test service noport: missing port"},
		{"service without selector", withServices("          - { name: nosel, port: 5440 }\n"), "", nil, "cluster pg-test service nosel: missing selector"},
		{"service without name", withServices("          - { port: 5440, selector: \"[]\" }\n"), "", nil, "service pg_services[0]: service without a name"},
		{"unknown service key", withServices("          - { name: typo, port: 5440, selector: \"[]\", chek: /primary }\n"), "", nil,
			`cluster pg-test service typo: unknown key "chek" in a v2 service definition`},
		{"bad dest word", withServices("          - { name: d, port: 5440, selector: \"[]\", dest: pgpool }\n"), "", nil,
			`service d: dest "pgpool" is neither postgres, pgbouncer, default nor a port number`},
		{"bad dest port", withServices("          - { name: d, port: 5440, selector: \"[]\", dest: 70000 }\n"), "", nil,
			"service d: dest 70000 is neither postgres, pgbouncer, default nor a port number"},
		{"bad pg_default_service_dest", goodInventory + "        pg_default_service_dest: bouncer\n", "", nil,
			`cluster pg-test service primary (pg_default_service_dest): dest "bouncer" is neither`},
		{"pg_weight too big", strings.Replace(goodInventory, "pg_role: replica", "pg_role: replica, pg_weight: 300", 1), "", nil,
			"host 10.10.10.12 (cluster pg-test): pg_weight 300 is outside 0-256"},
		{"pg_weight negative", strings.Replace(goodInventory, "pg_role: replica", "pg_role: replica, pg_weight: -1", 1), "", nil,
			"pg_weight -1 is outside 0-256"},
		{"services not a list", goodInventory + "        pg_services: { name: x }\n", "", nil, "pg_services must be a list of services"},
		{"v1 vip without vip_address", goodInventory + "        pg_services_extra: [ { name: v, src_ip: vip, src_port: 5440, selector: \"[]\" } ]\n", "", nil,
			"cluster pg-test service v: src_ip is vip but the cluster has no vip_address"},
		{"unknown cluster", goodInventory, "", []string{"--cluster", "pg-nope"}, "unknown cluster pg-nope (--cluster)"},
		{"unknown node", goodInventory, "", []string{"--node", "10.9.9.9"}, "--node 10.9.9.9 is not an inventory host"},
		{"state not JSON", goodInventory, "not json", nil, "state.json: not etcdctl JSON output"},
		{"state empty", goodInventory, " ", nil, "state.json: empty file"},
		{"state without header", goodInventory, `{"kvs":[]}`, nil, "state.json: no header"},
		{"state bad base64", goodInventory, `{"header":{"revision":3},"kvs":[{"key":"!!","value":""}]}`, nil, "kvs[0]: key is not base64"},
		{"state bad member JSON", goodInventory,
			`{"header":{"revision":3},"kvs":[{"key":"L3BnL3BnLXRlc3QvbWVtYmVycy9wZy10ZXN0LTE=","value":"e2JhZA=="}]}`, nil,
			"patroni member /pg/pg-test/members/pg-test-1: not Patroni member JSON"},
		{"state missing file", goodInventory, "\x00missing", nil, "read state: open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			inv := writeFile(t, dir, "inv.yml", tc.inventory)
			out := filepath.Join(dir, "out")
			require.NoError(t, os.Mkdir(out, 0o755))
			args := append([]string{"render", "--inventory", inv, "--out", out}, tc.args...)
			if tc.state != "" {
				state := filepath.Join(dir, "state.json")
				if tc.state != "\x00missing" {
					writeFile(t, dir, "state.json", tc.state)
				}
				args = append(args, "--state", state)
			}
			code, stdout, stderr := runCLI(t, args...)
			assert.Equal(t, 1, code, "exit code")
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one-line error, got %q", stderr)
			entries, err := os.ReadDir(out)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing written on bad input")
		})
	}
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yml", goodInventory)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"rendr"}, `unknown command "rendr"`},
		{"unknown flag", []string{"render", "--inventroy", inv}, "flag provided but not defined: -inventroy"},
		{"missing inventory", []string{"validate"}, "--inventory is required"},
		{"missing inventory file", []string{"validate", "--inventory", filepath.Join(dir, "nope.yml")}, "read inventory: open"},
		{"stray argument", []string{"validate", "--inventory", inv, "extra"}, `unexpected argument "extra"`},
		{"reconcile without etcd", []string{"reconcile", "--dry-run", "--inventory", inv, "--etcd", "http://127.0.0.1:1", "--timeout", "300ms"}, "etcd get /pg/"},
		{"set unknown instance", []string{"set", "pg-test-9", "pg_weight=10", "--inventory", inv, "--etcd", "http://127.0.0.1:1", "--timeout", "300ms"}, "unknown instance pg-test-9"},
		{"set bad weight", []string{"set", "pg-test-1", "pg_weight=300", "--inventory", inv}, "pg-test-1: pg_weight 300 is outside 0-256"},
		{"set not an assignment", []string{"set", "pg-test-1", "pg_weight", "--inventory", inv}, `pg-test-1: "pg_weight": want key=value`},
		{"set primary role", []string{"set", "pg-test-1", "pg_role=primary", "--inventory", inv}, "pg_role primary follows Patroni's leader"},
		{"run bad config key", []string{"run", "--config", writeFile(t, dir, "c.yml", "inventroy: x\n")}, `c.yml:1: unknown key "inventroy"`},
		{"run bad reload", []string{"run", "--inventory", inv, "--haproxy-reload", "exec:"}, `--haproxy-reload "exec:": empty command`},
		{"reconcile bad format", []string{"reconcile", "--dry-run", "--inventory", inv, "--state", inv, "-o", "yaml"}, `-o "yaml": want text or json`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for name := range commands() {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, name, "--help")
			assert.Equal(t, 0, code)
			assert.Contains(t, stderr, "Usage: pgsvc "+name)
		})
	}
}

// The shipped example config must stay loadable (unknown keys fail loudly).
func TestExampleConfigLoads(t *testing.T) {
	cfg := defaultConfig()
	fs := newFlags("run", "run", &bytes.Buffer{})
	require.NoError(t, parseDaemonFlags(fs, []string{"--config", "dist/pgsvc.yml", "--log-level", "debug"}, &cfg))
	assert.Equal(t, "/etc/pgsvc/inventory.yml", cfg.Inventory)
	assert.Equal(t, "https://10.10.10.10:2379", cfg.Etcd)
	assert.Empty(t, cfg.Reload, "the reload is detected (Pigsty v4.5's master socket), not set")
	assert.Equal(t, "debug", cfg.LogLevel, "flags win over the file")
}

// The shipped example relies on the defaults (issue 12.5: it set every
// haproxy_* key, `haproxy_reload: systemctl reload haproxy` overriding the
// master socket pgsvc detects on Pigsty v4.5). Only the inventory and
// etcd are set; every other key is there, commented out at its default
// (with an example where the default is empty), so uncommenting one
// changes nothing until it is edited, and a new key cannot be left out.
func TestExampleConfigShowsTheDefaults(t *testing.T) {
	data, err := os.ReadFile("dist/pgsvc.yml")
	require.NoError(t, err)
	var active map[string]any
	require.NoError(t, yaml.Unmarshal(data, &active))
	assert.ElementsMatch(t, []string{"inventory", "etcd"}, slices.Collect(maps.Keys(active)), "only these are set")

	defaults := map[string]any{}
	require.NoError(t, yaml.Unmarshal([]byte(defaultConfig().masked()), &defaults))
	seen := map[string]bool{"inventory": true, "etcd": true}
	for _, m := range regexp.MustCompile(`(?m)^# ([a-z_]+): (.*?)(?:\s+#.*)?$`).FindAllStringSubmatch(string(data), -1) {
		key, line := m[1], m[0]
		seen[key] = true
		want, known := defaults[key]
		require.True(t, known, "%q: not a config key", line)
		var got map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(key+": "+m[2]), &got), line)
		if want == nil || want == "" || fmt.Sprint(want) == "[]" {
			continue // no default value to show: an example
		}
		assert.Equal(t, fmt.Sprint(want), fmt.Sprint(got[key]), "%q: commented out at its default", line)
	}
	for key := range defaults {
		assert.True(t, seen[key], "%s is in the example", key)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	require.Equal(t, 0, code)
	assert.Regexp(t, `^pgsvc \S* go1\.\d+`, out)
}
