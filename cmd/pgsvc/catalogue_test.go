package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile/dcs"
	"github.com/pgsvc/pgsvc/selector"
)

// The bad-input catalogue: every way pgsvc's inputs can be broken that
// TestBadInput and TestBadFlags (badinput_test.go) do not already cover,
// each with its exact error and proof that nothing was applied.
//
// kinds and their proof:
//
//	render     `pgsvc render --out DIR` (inventory, --state, flags): exit 1, the
//	           exact one-line error, DIR (pre-populated with stale service
//	           files a good render would replace or remove, plus a foreign
//	           file) is byte-identical afterwards, modification times included.
//	validate   `pgsvc validate` (inventory, flags): exit 1, the exact error,
//	           no summary on stdout.
//	set/unset  `pgsvc set|unset` against an unreachable etcd (127.0.0.1:1,
//	           --timeout 300ms): the exact validation error, not a connection
//	           error, so it was refused before any etcd access.
//	override   dcs.ParseOverride on an etcd value: the exact error, nil vars;
//	           State.Put of it leaves the instance's previous override in place.
//	member     dcs.ParseMember on a Patroni member value: the exact error, a
//	           zero member; State.Put of it leaves the previous member in place.
//	servers-state, stat, show-proc, reply
//	           HAProxy replies to dataplaneapi's parsers: the exact error and no
//	           partial state (nil slots, slots untouched, zero MasterStatus).
type badInput struct {
	kind  string
	name  string
	input string   // inventory (render, set, unset; "" = goodInventory), value or reply otherwise
	state string   // render: --state file content
	args  []string // render, validate: extra flags ({inv}: the inventory path); set/unset: positional arguments
	cmd   string   // reply: the command's kind ("addr", "state", "weight", ...)
	want  string   // the exact error; {inv} and {state} stand for the files' paths
	sub   bool     // want is a distinctive substring (the rest is library text)
}

// twoClusters is goodInventory with a second cluster, pg-b.
const twoClusters = goodInventory + "    pg-b:\n      hosts: { 10.10.10.21: { pg_seq: 1, pg_role: primary } }\n      vars: { pg_cluster: pg-b }\n"

// proxyClusters: two clusters rendered onto the same proxy group.
const proxyClusters = "all:\n  children:\n    proxy: { hosts: { 10.0.0.9: {}, 10.0.0.10: {} } }\n" +
	"    pg-a: { hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-a, pg_service_provider: proxy } }\n" +
	"    pg-b: { hosts: { 10.0.0.2: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-b, pg_service_provider: proxy } }\n"

// aliasBomb continues an inventory's vars with anchors l1..l9, each ten
// aliases of the one before: 10^10 values once expanded.
func aliasBomb() string {
	var b strings.Builder
	for i := 1; i < 10; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "        l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(p+", ", 10), ", "))
	}
	return b.String()
}

// stateJSON is an etcdctl snapshot holding the given key/value pairs.
func stateJSON(kv ...string) string {
	var items []string
	for i := 0; i+1 < len(kv); i += 2 {
		items = append(items, fmt.Sprintf(`{"key":%q,"value":%q}`,
			base64.StdEncoding.EncodeToString([]byte(kv[i])), base64.StdEncoding.EncodeToString([]byte(kv[i+1]))))
	}
	return `{"header":{"revision":7},"kvs":[` + strings.Join(items, ",") + `]}`
}

func replaceOnce(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("catalogue: " + old + " not in base")
	}
	return strings.Replace(s, old, new, 1)
}

const (
	stateHeader = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
	stateLine1  = "5 pg-test-replica 1 pg-test-1 127.0.0.11 0 5 100 100 0 1 0 0 14 0 0 0 - 6432 - 0 8008 - - 8008\n"
	statHeader  = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck\n"
	usageSet    = "usage: pgsvc set <instance> key=value... --inventory FILE [--wait] [flags]"
	usageUnset  = "usage: pgsvc unset <instance> key... --inventory FILE [--wait] [flags]"
	notARole    = "is not one of primary, replica, standby, offline, delayed"
	notOverRole = "is not one of replica, standby, offline, delayed"
)

func catalogue() []badInput {
	g := goodInventory
	host2 := "10.10.10.12: { pg_seq: 2, pg_role: replica }"
	svc := withServices
	v1 := func(service string) string { return g + "        pg_services_extra:\n          - " + service + "\n" }
	rto := func(vars string) string { return g + vars }
	row10 := "[20, 5, 5, 15, 5, 1s, 0.5s, 1s, 3, 3]"
	member := "/pg/pg-test/members/pg-test-1"
	override := "/pgsvc/overrides/pg-test-1"
	return []badInput{
		// Inventory structure.
		{kind: "render", name: "root is a list", input: "- all\n", want: "{inv}:1: inventory must be a mapping of groups (usually one key, all)"},
		{kind: "render", name: "all is a scalar", input: "all: 5\n", want: "{inv}:1: group all must be a mapping of hosts, vars and children"},
		{kind: "render", name: "group is a list", input: "all:\n  children:\n    pg-test: [a, b]\n", want: "{inv}:3: group pg-test must be a mapping of hosts, vars and children"},
		{kind: "render", name: "vars is a list", input: "all:\n  vars: [1]\n", want: "{inv}:2: group all: vars must be a mapping"},
		{kind: "render", name: "children is a list", input: "all:\n  children: [pg-test]\n", want: "{inv}:2: group all: children must be a mapping of groups"},
		{kind: "render", name: "hosts is a list", input: "all:\n  children:\n    pg-test:\n      hosts: [10.10.10.11]\n", want: "{inv}:4: group pg-test: hosts must be a mapping keyed by host"},
		{kind: "render", name: "host variables are a list", input: replaceOnce(g, host2, "10.10.10.12: [ pg_seq, pg_role ]"),
			want: "{inv}:6: host 10.10.10.12: variables must be a mapping, got a list"},
		{kind: "render", name: "host variables are a scalar", input: replaceOnce(g, host2, "10.10.10.12: replica"),
			want: `{inv}:6: host 10.10.10.12: variables must be a mapping, got "replica"`},
		{kind: "render", name: "empty host name", input: replaceOnce(g, "10.10.10.12:", `"":`), want: "{inv}:6: group pg-test: empty host name"},
		{kind: "render", name: "tab indentation", input: "all:\n\tchildren: {}\n",
			want: "{inv}:2: malformed YAML: found character that cannot start any token (tab in the indentation: YAML indents with spaces only): \"\\tchildren: {}\""},
		{kind: "render", name: "variable that does not decode", input: g + "        pg_weight: !!int heavy\n",
			want: "{inv}:9: group pg-test: variable pg_weight: ", sub: true},

		// Members.
		{kind: "render", name: "pg_cluster is a number", input: replaceOnce(g, "pg_cluster: pg-test", "pg_cluster: 5"),
			want: "{inv}:8: host 10.10.10.11: pg_cluster 5 is not a cluster name"},
		{kind: "render", name: "pg_cluster is empty", input: replaceOnce(g, "pg_cluster: pg-test", `pg_cluster: ""`),
			want: `{inv}:8: host 10.10.10.11: pg_cluster "" is not a cluster name`},
		{kind: "render", name: "pg_seq negative", input: replaceOnce(g, "pg_seq: 2", "pg_seq: -2"),
			want: "{inv}:6: host 10.10.10.12 (cluster pg-test): pg_seq -2 is not a non-negative integer"},
		{kind: "render", name: "pg_seq fractional", input: replaceOnce(g, "pg_seq: 2", "pg_seq: 1.5"),
			want: "{inv}:6: host 10.10.10.12 (cluster pg-test): pg_seq 1.5 is not a non-negative integer"},
		{kind: "render", name: "pg_role is a list", input: replaceOnce(g, "pg_role: replica", "pg_role: [replica]"),
			want: "{inv}:6: host 10.10.10.12 (cluster pg-test): pg_role a list " + notARole},
		{kind: "render", name: "no primary", input: replaceOnce(g, "pg_role: primary", "pg_role: replica"),
			want: "{inv}: cluster pg-test must have exactly one pg_role primary, has 0 ()"},
		{kind: "render", name: "pg_weight is a word", input: replaceOnce(g, "pg_role: replica", "pg_role: replica, pg_weight: heavy"),
			want: `{inv}:6: host 10.10.10.12 (cluster pg-test): pg_weight "heavy" is not a weight (0-256)`},
		{kind: "render", name: "pg_weight in 0o form", input: replaceOnce(g, "pg_role: replica", "pg_role: replica, pg_weight: 0o144"),
			want: `{inv}:6: host 10.10.10.12 (cluster pg-test): pg_weight "0o144" is text to Ansible, not a weight (0-256) (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and HAProxy would read 0; write 100`},
		{kind: "render", name: "pg_weight in exponent form", input: replaceOnce(g, "pg_role: replica", "pg_role: replica, pg_weight: 1e2"),
			want: `{inv}:6: host 10.10.10.12 (cluster pg-test): pg_weight "1e2" is text to Ansible, not a weight (0-256) (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and HAProxy would read 1; write 100`},
		{kind: "render", name: "pg_seq neither integer nor digits", input: replaceOnce(g, "pg_seq: 2", "pg_seq: two"),
			want: `{inv}:6: host 10.10.10.12 (cluster pg-test): pg_seq "two" is not a non-negative integer`},
		{kind: "render", name: "pg_weight fractional", input: replaceOnce(g, "pg_role: replica", "pg_role: replica, pg_weight: 12.5"),
			want: "{inv}:6: host 10.10.10.12 (cluster pg-test): pg_weight 12.5 is not a weight (0-256)"},
		{kind: "render", name: "pg_port out of range", input: g + "        pg_port: 70000\n",
			want: "{inv}:9: host 10.10.10.11 (cluster pg-test): pg_port 70000 is not a port number"},
		{kind: "render", name: "patroni_port is a word", input: g + "        patroni_port: abc\n",
			want: `{inv}:9: host 10.10.10.11 (cluster pg-test): patroni_port "abc" is not a port number`},
		{kind: "render", name: "pgbouncer_port zero", input: replaceOnce(g, "pg_role: replica", "pg_role: replica, pgbouncer_port: 0"),
			want: "{inv}:6: host 10.10.10.12 (cluster pg-test): pgbouncer_port 0 is not a port number"},
		{kind: "render", name: "pg_weight quoted, out of range", input: replaceOnce(g, "pg_role: replica", `pg_role: replica, pg_weight: "300"`),
			want: `{inv}:6: host 10.10.10.12 (cluster pg-test): pg_weight "300" is outside 0-256`},
		// Member errors name the line where the host is listed, not the
		// group's pg_cluster line or the line of another variable.
		{kind: "render", name: "missing pg_seq names the host's line", input: replaceOnce(g, "pg_seq: 2, ", ""),
			want: "{inv}:6: cluster pg-test host 10.10.10.12: missing pg_seq"},
		{kind: "render", name: "pg_seq from group vars, duplicate: the host's line",
			input: replaceOnce(replaceOnce(replaceOnce(g, "pg_seq: 1, ", ""), "pg_seq: 2, ", ""), "pg_cluster: pg-test", "pg_cluster: pg-test\n        pg_seq: 1"),
			want:  "{inv}:6: host 10.10.10.12 (cluster pg-test): duplicate pg_seq 1, also used by host 10.10.10.11"},
		{kind: "render", name: "missing pg_role names the host's line", input: replaceOnce(g, host2, "10.10.10.12:\n          pg_seq: 2"),
			want: "{inv}:6: cluster pg-test host 10.10.10.12: missing pg_role"},

		// YAML as Ansible (PyYAML) reads it: merge keys and aliases.
		{kind: "render", name: "merge key of a scalar", input: g + "        <<: 5\n",
			want: `{inv}:9: merge key << takes a mapping or a list of mappings, got "5"`},
		{kind: "render", name: "merge key of a list of scalars", input: g + "        <<: [ a ]\n",
			want: `{inv}:9: merge key << takes a mapping or a list of mappings, got a list holding "a"`},
		{kind: "render", name: "alias inside its own anchor", input: g + "        x: &a [ 1, *a ]\n",
			want: "{inv}:9: alias *a refers to a value that contains it"},
		{kind: "render", name: "alias bomb", input: g + "        l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + aliasBomb(),
			want: "aliases expand the inventory beyond 1000000 values", sub: true},

		// Inventories and flags that leave nothing to serve.
		{kind: "render", name: "no host sets pg_cluster", input: "all:\n  hosts: { 10.10.10.11: { pg_seq: 1, pg_role: primary } }\n",
			want: "{inv}: no host sets pg_cluster, so there is no PostgreSQL cluster to serve"},
		{kind: "render", name: "--node does not carry --cluster", input: twoClusters, args: []string{"--node", "10.10.10.11", "--cluster", "pg-b"},
			want: "{inv}: --node 10.10.10.11 does not carry cluster pg-b (--cluster): Pigsty renders its services onto its own members"},
		{kind: "render", name: "--node does not carry --cluster served by a provider",
			input: replaceOnce(twoClusters, "pg_cluster: pg-test", "pg_cluster: pg-test\n        pg_service_provider: proxy") + "    proxy: { hosts: { 10.10.10.30: {} } }\n",
			args:  []string{"--node", "10.10.10.11", "--cluster", "pg-test"},
			want:  "{inv}: --node 10.10.10.11 does not carry cluster pg-test (--cluster): Pigsty renders its services onto the hosts of group proxy"},
		{kind: "render", name: "--out is missing", args: []string{"--out", "/nonexistent-pgsvc/out"},
			want: "--out /nonexistent-pgsvc/out: no such directory"},
		{kind: "render", name: "--out is a file", args: []string{"--out", "{inv}"},
			want: "--out {inv}: not a directory"},
		{kind: "render", name: "unknown file layout", args: []string{"--haproxy-file-layout", "per-cluster"},
			want: `--haproxy-file-layout: file layout "per-cluster": want "service" (one file per service, as Pigsty) or "cluster" (one file per cluster)`},

		// Service definitions (v2).
		{kind: "render", name: "service is a scalar", input: svc("          - primary\n"),
			want: `{inv}:10: cluster pg-test: pg_services[0] must be a mapping, got "primary"`},
		{kind: "render", name: "pg_default_services is a mapping", input: g + "        pg_default_services: { primary: 5433 }\n",
			want: "{inv}:9: cluster pg-test: pg_default_services must be a list of services, got a mapping"},
		{kind: "render", name: "port zero", input: svc("          - { name: p, port: 0, selector: \"[]\" }\n"),
			want: "{inv}:10: cluster pg-test service p: port 0 is not a port number (1-65535)"},
		// A quoted integer is what Pigsty renders as written (port: "5440" works); this is not one.
		{kind: "render", name: "port quoted, not an integer", input: svc("          - { name: p, port: \"54x0\", selector: \"[]\" }\n"),
			want: `{inv}:10: cluster pg-test service p: port "54x0" is text to Ansible, not a port number (1-65535) (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and HAProxy would bind port 54`},
		{kind: "render", name: "maxconn quoted, not an integer", input: svc("          - { name: m, port: 5440, selector: \"[]\", maxconn: \"5k\" }\n"),
			want: `{inv}:10: cluster pg-test service m: maxconn "5k" is text to Ansible, not a non-negative integer (YAML 1.1 reads only plain decimal, 0x…, 0b…, 0… octal and 1:40 as integers): Pigsty would print it as written and HAProxy would read maxconn 5`},
		{kind: "render", name: "error in a later entry names its line",
			input: svc("          - { name: a, port: 5440, selector: \"[]\" }\n          - name: b\n            port: 5441\n            selector: 5\n"),
			want:  "{inv}:11: cluster pg-test service b: selector must be a JMESPath string, got 5"},
		{kind: "render", name: "duplicate port names the later entry", input: svc("          - { name: extra, port: 5433, selector: \"[]\" }\n"),
			want: "{inv}:10: cluster pg-test: services primary and extra both use port 5433"},
		{kind: "render", name: "selector is a list", input: svc("          - { name: s, port: 5440, selector: [1] }\n"),
			want: "{inv}:10: cluster pg-test service s: selector must be a JMESPath string, got a list"},
		{kind: "render", name: "selector is blank", input: svc("          - { name: s, port: 5440, selector: \"  \" }\n"),
			want: `{inv}:10: cluster pg-test service s: selector must be a JMESPath string, got "  "`},
		{kind: "render", name: "backup is a number", input: svc("          - { name: b, port: 5440, selector: \"[]\", backup: 5 }\n"),
			want: "{inv}:10: cluster pg-test service b: backup must be a JMESPath string, got 5"},
		{kind: "render", name: "backup does not compile", input: svc("          - { name: b, port: 5440, selector: \"[]\", backup: \"[? \" }\n"),
			want: `{inv}:10: cluster pg-test service b backup: invalid JMESPath "[? ": `, sub: true},
		{kind: "render", name: "unterminated backtick literal", input: svc("          - { name: s, port: 5440, selector: \"[? pg_role == `primary ]\" }\n"),
			want: "{inv}:10: cluster pg-test service s selector: invalid JMESPath \"[? pg_role == `primary ]\": ", sub: true},
		{kind: "render", name: "maxconn negative", input: svc("          - { name: m, port: 5440, selector: \"[]\", maxconn: -5 }\n"),
			want: "{inv}:10: cluster pg-test service m: maxconn -5 is not a non-negative integer"},
		{kind: "render", name: "balance is a list", input: svc("          - { name: m, port: 5440, selector: \"[]\", balance: [roundrobin] }\n"),
			want: "{inv}:10: cluster pg-test service m: balance must be a string, got a list"},
		{kind: "render", name: "options is a mapping", input: svc("          - { name: m, port: 5440, selector: \"[]\", options: { inter: 1s } }\n"),
			want: "{inv}:10: cluster pg-test service m: options must be a string, got a mapping"},

		// Selector results (evaluated at render time).
		{kind: "render", name: "selector returns a number", input: svc("          - { name: n, port: 5440, selector: \"[0].pg_seq\" }\n"),
			want: `{inv}:10: cluster pg-test service n: selector "[0].pg_seq" returned 1, want a list of hosts`},
		{kind: "render", name: "selector returns a list of numbers", input: svc("          - { name: n, port: 5440, selector: \"[].pg_seq\" }\n"),
			want: `{inv}:10: cluster pg-test service n: selector "[].pg_seq" returned a list holding 1, want a list of hosts`},
		{kind: "render", name: "selector returns true", input: svc("          - { name: n, port: 5440, selector: \"`true`\" }\n"),
			want: "{inv}:10: cluster pg-test service n: selector \"`true`\" returned true, want a list of hosts"},
		{kind: "render", name: "selector returns a host name", input: svc("          - { name: n, port: 5440, selector: \"[0].inventory_hostname\" }\n"),
			want: `{inv}:10: cluster pg-test service n: selector "[0].inventory_hostname" returned "10.10.10.11", want a list of hosts`},
		{kind: "render", name: "selector returns projected objects", input: svc("          - { name: n, port: 5440, selector: \"[].{host: inventory_hostname}\" }\n"),
			want: `{inv}:10: cluster pg-test service n: selector "[].{host: inventory_hostname}" returned an object that is not a member of the cluster, want a list of hosts`},
		{kind: "render", name: "selector type error at run time", input: svc("          - { name: n, port: 5440, selector: \"abs(@)\" }\n"),
			want: `{inv}:10: cluster pg-test service n: selector "abs(@)" failed: abs() got an array, expected number (Pigsty's render fails here too)`},
		// go-jmespath prints the records it failed on; none of it may reach the error.
		{kind: "render", name: "selector error never prints host variables", input: strings.Replace(svc("          - { name: n, port: 5440, selector: \"abs(@)\" }\n"),
			"pg_cluster: pg-test", "pg_cluster: pg-test\n        patroni_password: Sup3rS3cret", 1),
			want: `selector "abs(@)" failed: abs() got an array, expected number (Pigsty's render fails here too)`, sub: true},

		// v1 service definitions.
		{kind: "render", name: "v1 check_port unknown", input: v1(`{ name: v, src_port: 5440, selector: "[]", check_port: exporter }`),
			want: `{inv}:10: cluster pg-test service v: check_port "exporter" is neither patroni, pg_exporter, none nor a port number`},
		{kind: "render", name: "v1 dst_port unknown", input: v1(`{ name: v, src_port: 5440, selector: "[]", dst_port: pgpool }`),
			want: `{inv}:10: cluster pg-test service v: dst_port "pgpool" is neither postgres, pgbouncer, default nor a port number: Pigsty's template would send traffic to port 5432 (text other than postgres and pgbouncer falls through to it)`},
		{kind: "render", name: "v1 check_code a word", input: v1(`{ name: v, src_port: 5440, selector: "[]", check_code: ok }`),
			want: `{inv}:10: cluster pg-test service v: check_code "ok" is not a non-negative integer`},
		{kind: "render", name: "v1 haproxy is a scalar", input: v1(`{ name: v, src_port: 5440, selector: "[]", haproxy: fast }`),
			want: `{inv}:10: cluster pg-test service v: haproxy must be a mapping, got "fast"`},
		{kind: "render", name: "v1 unknown haproxy key", input: v1(`{ name: v, src_port: 5440, selector: "[]", haproxy: { timeout: 1 } }`),
			want: `{inv}:10: cluster pg-test service v: unknown key "haproxy.timeout" in a v1 service definition`},
		{kind: "render", name: "v1 service with a v2 key", input: v1(`{ name: v, src_port: 5440, port: 5441, selector: "[]" }`),
			want: `{inv}:10: cluster pg-test service v: unknown key "port" in a v1 service definition`},
		{kind: "render", name: "v1 selector_backup is a list", input: v1(`{ name: v, src_port: 5440, selector: "[]", selector_backup: [] }`),
			want: "{inv}:10: cluster pg-test service v: selector_backup must be a JMESPath string, got a list"},

		// pg_rto / pg_rto_plan.
		{kind: "render", name: "pg_rto_plan is a scalar", input: rto("        pg_rto: 30\n        pg_rto_plan: fast\n"),
			want: `{inv}:10: cluster pg-test: pg_rto_plan must be a mapping of plans, got "fast"`},
		{kind: "render", name: "pg_rto_plan row too short", input: rto("        pg_rto: norm\n        pg_rto_plan: { norm: [30, 5] }\n"),
			want: "{inv}:10: cluster pg-test: pg_rto_plan.norm must be a list of 10 values [ttl, loop, retry, start, margin, inter, fastinter, downinter, rise, fall]"},
		{kind: "render", name: "pg_rto plan missing, no norm", input: rto("        pg_rto: safe\n        pg_rto_plan: { fast: " + row10 + " }\n"),
			want: `{inv}:9: cluster pg-test: pg_rto "safe" is not in pg_rto_plan, which has no norm plan either`},
		{kind: "render", name: "pg_rto_plan without norm, pg_rto unset", input: rto("        pg_rto_plan: { fast: " + row10 + " }\n"),
			want: "{inv}:9: cluster pg-test: pg_rto_plan has no norm plan, which applies when pg_rto is unset"},
		{kind: "render", name: "pg_rto_plan empty cell", input: rto("        pg_rto: fast\n        pg_rto_plan: { fast: [20, 5, 5, 15, 5, \"\", 0.5s, 1s, 3, 3] }\n"),
			want: "{inv}:10: cluster pg-test: pg_rto_plan.fast[5]: empty value"},

		// One HAProxy serving two clusters (--node).
		{kind: "render", name: "two clusters bind the same port on one node",
			input: "all:\n  children:\n    proxy: { hosts: { 10.0.0.9: {} } }\n" +
				"    pg-a: { hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-a, pg_service_provider: proxy } }\n" +
				"    pg-b: { hosts: { 10.0.0.2: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-b, pg_service_provider: proxy } }\n",
			args: []string{"--node", "10.0.0.9"},
			want: "services pg-a-default (*:5436) and pg-b-default (*:5436) bind the same port on this HAProxy"},

		// pgsvc validate without --node: every node Pigsty renders services onto.
		{kind: "validate", name: "two provider clusters bind the same port", input: proxyClusters,
			want: "{inv}: services pg-a-default (*:5436) and pg-b-default (*:5436) bind the same port on nodes 10.0.0.9, 10.0.0.10"},
		{kind: "validate", name: "a member is also a proxy",
			input: "all:\n  children:\n    proxy: { hosts: { 10.0.0.9: {} } }\n" +
				"    pg-a: { hosts: { 10.0.0.1: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-a, pg_service_provider: proxy } }\n" +
				"    pg-c: { hosts: { 10.0.0.9: { pg_seq: 1, pg_role: primary } }, vars: { pg_cluster: pg-c } }\n",
			args: []string{"--cluster", "pg-a"},
			want: "{inv}: services pg-a-default (*:5436) and pg-c-default (*:5436) bind the same port on node 10.0.0.9"},
		{kind: "validate", name: "no host sets pg_cluster", input: "all:\n  children: { proxy: { hosts: { 10.0.0.9: {} } } }\n",
			want: "{inv}: no host sets pg_cluster, so there is no PostgreSQL cluster to serve"},
		{kind: "validate", name: "--node does not carry --cluster", input: twoClusters, args: []string{"--node", "10.10.10.21", "--cluster", "pg-test"},
			want: "{inv}: --node 10.10.10.21 does not carry cluster pg-test (--cluster): Pigsty renders its services onto its own members"},

		// Patroni snapshots (--state).
		{kind: "render", name: "state is a JSON list", state: "[]",
			want: "state {state}: not etcdctl JSON output: the document is a list, want an object (at byte 1)"},
		{kind: "render", name: "state is null", state: "null",
			want: "state {state}: no header: want the output of `etcdctl get --prefix <namespace> -w json`"},
		{kind: "render", name: "state revision is a string", state: `{"header":{"revision":"7"},"kvs":[]}`,
			want: "state {state}: not etcdctl JSON output: header.revision is a string, want an integer (at byte 25)"},
		{kind: "render", name: "state kvs is an object", state: `{"header":{"revision":7},"kvs":{}}`,
			want: "state {state}: not etcdctl JSON output: kvs is an object, want a list (at byte 32)"},
		{kind: "render", name: "state value not base64", state: `{"header":{"revision":7},"kvs":[{"key":"L3BnL3BnLXRlc3QvbGVhZGVy","value":"pg-test-1"}]}`,
			want: "state {state}: kvs[0] (/pg/pg-test/leader): value is not base64: illegal base64 data at input byte 2"},
		{kind: "render", name: "state holds no served cluster", state: `{"header":{"revision":7},"kvs":[]}`,
			want: "state {state}: no Patroni keys under /pg/ for pg-test (wrong --namespace?)"},
		{kind: "render", name: "state member without role", state: stateJSON(member, `{"state":"running","role":null}`),
			want: "state {state}: patroni member " + member + ": member JSON has no role"},
		{kind: "render", name: "state member role is a number", state: stateJSON(member, `{"role":1}`),
			want: "state {state}: patroni member " + member + ": not Patroni member JSON: role is a number, want a string (at byte 9)"},
		{kind: "render", name: "state history is not a list", state: stateJSON("/pg/pg-test/leader", "pg-test-1", "/pg/pg-test/history", `{"leader":"pg-test-2"}`),
			want: "state {state}: patroni history /pg/pg-test/history: not Patroni history JSON (a list of [timeline, lsn, reason, timestamp, new_leader]): the document is an object, want a list (at byte 1)"},
		{kind: "render", name: "state override weight out of range", state: stateJSON("/pg/pg-test/leader", "pg-test-1", override, `{"pg_weight":999}`),
			want: "state {state}: override " + override + ": pg_weight 999 is outside 0-256"},
		{kind: "render", name: "state override makes a member primary", state: stateJSON(override, `{"pg_role":"primary"}`),
			want: "state {state}: override " + override + ": pg_role primary follows Patroni's leader and cannot be overridden"},
		{kind: "render", name: "state override with trailing data", state: stateJSON(override, `{"pg_weight":10} {"pg_weight":300}`),
			want: "state {state}: override " + override + ": not a JSON object of variables: data after the object"},
		{kind: "render", name: "valid override breaks a selector",
			input: svc("          - { name: n, port: 5440, selector: \"[? !note || length(note) > `0`]\" }\n"),
			state: stateJSON(override, `{"note":5}`),
			want:  "{inv}:10: cluster pg-test service n: selector \"[? !note || length(note) > `0`]\" failed: ", sub: true},

		// pgsvc set / unset: refused before etcd is contacted.
		{kind: "set", name: "empty key", args: []string{"pg-test-1", "=5"}, want: `pg-test-1: "=5": want key=value`},
		{kind: "set", name: "port override out of range", args: []string{"pg-test-1", "pg_port=99999"}, want: "pg-test-1: pg_port 99999 is not a port number (1-65535)"},
		{kind: "set", name: "port override not a number", args: []string{"pg-test-1", "pgbouncer_port=abc"}, want: "pg-test-1: pgbouncer_port abc is not a port number (1-65535)"},
		{kind: "set", name: "pg_seq is identity", args: []string{"pg-test-1", "pg_seq=3"}, want: "pg-test-1: pg_seq identifies the instance and cannot be overridden"},
		{kind: "set", name: "pg_cluster is identity", args: []string{"pg-test-1", "pg_cluster=pg-x"}, want: "pg-test-1: pg_cluster identifies the instance and cannot be overridden"},
		{kind: "set", name: "inventory_hostname is identity", args: []string{"pg-test-1", "inventory_hostname=10.0.0.9"},
			want: "pg-test-1: inventory_hostname identifies the instance and cannot be overridden"},
		{kind: "set", name: "unknown role", args: []string{"pg-test-2", "pg_role=boss"}, want: "pg-test-2: pg_role boss " + notOverRole},
		{kind: "set", name: "empty role", args: []string{"pg-test-2", "pg_role="}, want: "pg-test-2: pg_role <nil> " + notOverRole},
		{kind: "set", name: "role is a boolean", args: []string{"pg-test-2", "pg_role=true"}, want: "pg-test-2: pg_role true " + notOverRole},
		{kind: "set", name: "weight is a word", args: []string{"pg-test-2", "pg_weight=heavy"}, want: `pg-test-2: pg_weight "heavy" is not a number`},
		{kind: "set", name: "weight is a boolean", args: []string{"pg-test-2", "pg_weight=true"}, want: "pg-test-2: pg_weight true is not a number"},
		{kind: "set", name: "weight fractional", args: []string{"pg-test-2", "pg_weight=12.5"}, want: "pg-test-2: pg_weight 12.5 is outside 0-256"},
		{kind: "set", name: "weight negative", args: []string{"pg-test-2", "pg_weight=-1"}, want: "pg-test-2: pg_weight -1 is outside 0-256"},
		{kind: "set", name: "weight in exponent form", args: []string{"pg-test-2", "pg_weight=1e3"}, want: `pg-test-2: pg_weight "1e3" is not a number`},
		{kind: "set", name: "value is a list", args: []string{"pg-test-2", "tags=[a]"}, want: `pg-test-2: tags: value "[a]" must be a string, number or boolean`},
		{kind: "set", name: "value is a mapping", args: []string{"pg-test-2", "meta={dc: x}"}, want: `pg-test-2: meta: value "{dc: x}" must be a string, number or boolean`},
		{kind: "set", name: "value is not a number (.nan)", args: []string{"pg-test-2", "note=.nan"}, want: "pg-test-2: note: NaN is not a finite number"},
		{kind: "set", name: "key is not UTF-8", args: []string{"pg-test-2", "\xff=1"}, want: `pg-test-2: variable name "\xff" is not valid UTF-8`},
		{kind: "set", name: "value is broken YAML", args: []string{"pg-test-2", `note="open`}, want: `pg-test-2: note: value "\"open": yaml: `, sub: true},
		{kind: "set", name: "one bad assignment refuses all", args: []string{"pg-test-2", "pg_weight=10", "pg_offline_query=true", "pg_role=primary"},
			want: "pg-test-2: pg_role primary follows Patroni's leader and cannot be overridden"},
		{kind: "set", name: "no assignment", args: []string{"pg-test-2"}, want: usageSet},
		{kind: "set", name: "broken inventory", input: replaceOnce(g, "pg_role: primary", "pg_role: replica"), args: []string{"pg-test-2", "pg_weight=10"},
			want: "{inv}: cluster pg-test must have exactly one pg_role primary, has 0 ()"},
		{kind: "unset", name: "no key", args: []string{"pg-test-2"}, want: usageUnset},
		{kind: "unset", name: "unknown instance", args: []string{"pg-test-9", "pg_weight"}, want: "unknown instance pg-test-9: not <pg_cluster>-<pg_seq> of any inventory host"},
		{kind: "unset", name: "instance is a host address", args: []string{"10.10.10.12", "pg_weight"}, want: "unknown instance 10.10.10.12: not <pg_cluster>-<pg_seq> of any inventory host"},

		// Override values in etcd (the daemon's watch path).
		{kind: "override", name: "empty variable name", input: `{"":1}`, want: "empty variable name"},
		{kind: "override", name: "inventory_hostname", input: `{"inventory_hostname":"10.0.0.9"}`, want: "inventory_hostname identifies the instance and cannot be overridden"},
		{kind: "override", name: "pg_cluster sorted first", input: `{"pg_weight":10,"pg_cluster":"pg-x"}`, want: "pg_cluster identifies the instance and cannot be overridden"},
		{kind: "override", name: "weight fractional", input: `{"pg_weight":1.5}`, want: "pg_weight 1.5 is outside 0-256"},
		{kind: "override", name: "weight negative", input: `{"pg_weight":-1}`, want: "pg_weight -1 is outside 0-256"},
		{kind: "override", name: "weight is a boolean", input: `{"pg_weight":false}`, want: "pg_weight false is not a number"},
		{kind: "override", name: "list value", input: `{"tags":[1]}`, want: "tags: value must be a string, number, boolean or null"},
		{kind: "override", name: "null role", input: `{"pg_role":null}`, want: "pg_role <nil> " + notOverRole},
		{kind: "override", name: "a JSON string", input: `"pg_weight=10"`,
			want: "not a JSON object of variables: the document is a string, want an object (at byte 14)"},
		{kind: "override", name: "empty value", input: ``, want: "not a JSON object of variables: EOF"},
		{kind: "override", name: "two objects", input: `{"pg_weight":10} {"pg_weight":300}`, want: "not a JSON object of variables: data after the object"},
		{kind: "override", name: "trailing garbage", input: `{"pg_weight":10}x`, want: "not a JSON object of variables: data after the object"},

		// Patroni member values in etcd.
		{kind: "member", name: "null role", input: `{"role":null,"state":"running"}`, want: "member JSON has no role"},
		{kind: "override", name: "group_names is Ansible's", input: `{"group_names":"pg-test"}`, want: "group_names identifies the instance and cannot be overridden"},
		{kind: "member", name: "role is a number", input: `{"role":5}`, want: "not Patroni member JSON: role is a number, want a string (at byte 9)"},
		{kind: "member", name: "tags is a list", input: `{"role":"replica","tags":["nofailover"]}`,
			want: "not Patroni member JSON: tags is a list, want an object (at byte 26)"},
		{kind: "member", name: "state is a number", input: `{"role":"replica","state":1}`,
			want: "not Patroni member JSON: state is a number, want a string (at byte 27)"},
		{kind: "member", name: "empty value", input: ``, want: "not Patroni member JSON: unexpected end of JSON input"},
		{kind: "member", name: "trailing garbage", input: `{"role":"master"} x`, want: "not Patroni member JSON: invalid character 'x' after top-level value"},
		{kind: "member", name: "a bare word", input: `master`, want: "not Patroni member JSON: invalid character 'm' looking for beginning of value"},

		// HAProxy replies.
		{kind: "servers-state", name: "empty reply", input: "", want: `show servers state: unexpected reply ""`},
		{kind: "servers-state", name: "format version 2", input: "2\n" + stateLine1, want: `show servers state: unexpected reply "2"`},
		{kind: "servers-state", name: "non-admin socket", input: "Permission denied\n", want: `show servers state: unexpected reply "Permission denied"`},
		{kind: "servers-state", name: "weight not a number", input: stateHeader + strings.Replace(stateLine1, " 100 100 ", " x 100 ", 1),
			want: `show servers state: line "5 pg-test-replica 1 pg-test-1 127.0.0.11 0 5 x 100 0 1 0 0 14 0 0 0 - 6432 - 0 8008 - - 8008": strconv.Atoi: parsing "x": invalid syntax`},
		{kind: "servers-state", name: "reply cut after a good line", input: stateHeader + stateLine1 + "5 pg-test-replica 2 pg-test-1.b 127.0.0.11 2\n",
			want: `show servers state: short line "5 pg-test-replica 2 pg-test-1.b 127.0.0.11 2"`},
		{kind: "stat", name: "empty reply", input: "", want: `show stat: unexpected reply ""`},
		{kind: "stat", name: "no status column", input: "# pxname,svname,bck\npg-test-replica,pg-test-1,0\n", want: `show stat: no status column in "# pxname,svname,bck"`},
		{kind: "stat", name: "no bck column", input: "# pxname,svname,status\npg-test-replica,pg-test-1,UP\n", want: `show stat: no bck column in "# pxname,svname,status"`},
		{kind: "stat", name: "non-admin socket", input: "Permission denied\n", want: `show stat: no pxname column in "Permission denied"`},
		{kind: "stat", name: "no pxname column", input: "# svname,status,bck\npg-test-1,UP,0\n", want: `show stat: no pxname column in "# svname,status,bck"`},
		{kind: "stat", name: "unterminated quote", input: statHeader + "pg-test-replica,\"pg-test-1,0\n", want: `show stat: line "pg-test-replica,\"pg-test-1,0": extraneous or missing " in quoted-field`},
		{kind: "show-proc", name: "empty reply", input: "", want: `show proc: no master line in ""`},
		{kind: "show-proc", name: "workers but no master", input: "# workers\n31470 worker 0 0d00h00m02s 2.6.12\n", want: `show proc: no master line in "# workers"`},
		{kind: "show-proc", name: "stats socket instead of master", input: "Unknown command: 'show proc'\n", want: `show proc: no master line in "Unknown command: 'show proc'"`},
		{kind: "reply", name: "state command with an addr notice", cmd: "state", input: "[4]: IP changed from '1.1.1.1' to '2.2.2.2'\n",
			want: `haproxy refused "set server b/s state ready": [4]: IP changed from '1.1.1.1' to '2.2.2.2'`},
		{kind: "reply", name: "addr without a backend/server", cmd: "addr", input: "[3]: Require 'backend/server'.\n",
			want: `haproxy refused "set server b/s addr 10.0.0.1 port 5432": [3]: Require 'backend/server'.`},
		{kind: "reply", name: "static LB weight", cmd: "weight", input: "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n",
			want: `haproxy refused "set server b/s weight 20": Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.`},
		{kind: "reply", name: "multi-line reply names its first line", cmd: "health", input: "[3]: health: unknown state\nUsage: set server <b>/<s> health up|stopping|down\n",
			want: `haproxy refused "set server b/s health up": [3]: health: unknown state`},
		{kind: "reply", name: "shutdown of an unknown server", cmd: "shutdown", input: "No such server.\n",
			want: `haproxy refused "shutdown sessions server b/s": No such server.`},
	}
}

var replyLines = map[string]string{
	"state":    "set server b/s state ready",
	"addr":     "set server b/s addr 10.0.0.1 port 5432",
	"weight":   "set server b/s weight 20",
	"health":   "set server b/s health up",
	"shutdown": "shutdown sessions server b/s",
}

// TestBadInputCatalogue runs the catalogue. See badInput for what each kind proves.
func TestBadInputCatalogue(t *testing.T) {
	rows := catalogue()
	require.GreaterOrEqual(t, len(rows), 30)
	stale := staleServiceFiles(t)
	seen := map[string]bool{}
	for _, tc := range rows {
		id := tc.kind + ": " + tc.name
		require.False(t, seen[id], "duplicate row %s", id)
		seen[id] = true
		t.Run(strings.ReplaceAll(id, ": ", "/"), func(t *testing.T) {
			switch tc.kind {
			case "render":
				checkRender(t, tc, stale)
			case "validate":
				checkValidate(t, tc)
			case "set", "unset":
				checkOverrideCommand(t, tc)
			case "override":
				checkOverrideValue(t, tc)
			case "member":
				checkMemberValue(t, tc)
			case "servers-state", "stat", "show-proc", "reply":
				checkReply(t, tc)
			default:
				t.Fatalf("unknown kind %q", tc.kind)
			}
		})
	}
}

// assertError checks a message against the row's want (paths expanded).
func assertError(t *testing.T, tc badInput, got string, paths map[string]string) {
	t.Helper()
	t.Logf("error: %s", got) // go test -v -run Catalogue prints the catalogue
	want := tc.want
	for k, v := range paths {
		want = strings.ReplaceAll(want, k, v)
	}
	if tc.sub {
		assert.Contains(t, got, want)
		return
	}
	assert.Equal(t, want, got)
}

// staleServiceFiles renders a slightly different good inventory (other
// weights): every file a good render of the catalogue's base would replace.
func staleServiceFiles(t *testing.T) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	// The previous inventory also had a service the good one has not: a good
	// render removes its file, a refused one must not.
	prev := strings.Replace(goodInventory, "pg_role: replica", "pg_role: replica, pg_weight: 50", 1) +
		"        pg_services: [ { name: gone, port: 5450, selector: \"[]\" } ]\n"
	inv := writeFile(t, dir, "prev.yml", prev)
	out := filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(out, 0o755))
	code, _, stderr := runCLI(t, "render", "--inventory", inv, "--out", out)
	require.Equal(t, 0, code, stderr)
	files := map[string][]byte{"README.txt": []byte("not pgsvc's: never touched\n")}
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		if e.Name() == dataplaneapi.DefaultStateFile {
			continue // not a service file: empty after any render
		}
		data, err := os.ReadFile(filepath.Join(out, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = data
	}

	// Control: the good inventory does replace them, so an unchanged
	// directory below means the bad input was refused, not a no-op.
	ctl := populate(t, files)
	good := writeFile(t, dir, "good.yml", goodInventory)
	code, _, stderr = runCLI(t, "render", "--inventory", good, "--out", ctl)
	require.Equal(t, 0, code, stderr)
	after := snapshotDir(t, ctl)
	changed := 0
	for name, data := range files {
		if string(after[name].data) != string(data) {
			changed++
		}
	}
	require.Equal(t, len(files)-1, changed, "a good render replaces (or removes) every stale service file and nothing else")
	require.NotContains(t, after, "pg-test-gone.cfg", "a good render removes the file of a service that is gone")
	return files
}

type fileState struct {
	data []byte
	mod  time.Time
	mode os.FileMode
}

func populate(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.Mkdir(dir, 0o755))
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for name, data := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		require.NoError(t, os.Chtimes(p, old, old))
	}
	return dir
}

func snapshotDir(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]fileState{}
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = fileState{data: data, mod: info.ModTime(), mode: info.Mode()}
	}
	return out
}

func checkRender(t *testing.T, tc badInput, stale map[string][]byte) {
	dir := t.TempDir()
	input := tc.input
	if input == "" {
		input = goodInventory
	}
	inv := writeFile(t, dir, "inv.yml", input)
	out := populate(t, stale)
	before := snapshotDir(t, out)
	args := []string{"render", "--inventory", inv, "--out", out}
	for _, a := range tc.args {
		args = append(args, strings.ReplaceAll(a, "{inv}", inv))
	}
	state := ""
	if tc.state != "" {
		state = writeFile(t, dir, "state.json", tc.state)
		args = append(args, "--state", state)
	}
	code, stdout, stderr := runCLI(t, args...)
	assert.Equal(t, 1, code, "exit code")
	assert.Empty(t, stdout)
	require.True(t, strings.HasPrefix(stderr, "pgsvc render: ") && strings.HasSuffix(stderr, "\n"), "%q", stderr)
	msg := strings.TrimSuffix(strings.TrimPrefix(stderr, "pgsvc render: "), "\n")
	assert.NotContains(t, msg, "\n", "one-line error")
	assert.NotContains(t, msg, "Sup3rS3cret", "no secret from the inventory in an error")
	assertError(t, tc, msg, map[string]string{"{inv}": inv, "{state}": state})
	assert.Equal(t, before, snapshotDir(t, out), "--out directory unchanged")
	assert.Len(t, before, len(stale))
}

func checkValidate(t *testing.T, tc badInput) {
	dir := t.TempDir()
	input := tc.input
	if input == "" {
		input = goodInventory
	}
	inv := writeFile(t, dir, "inv.yml", input)
	args := []string{"validate", "--inventory", inv}
	for _, a := range tc.args {
		args = append(args, strings.ReplaceAll(a, "{inv}", inv))
	}
	code, stdout, stderr := runCLI(t, args...)
	assert.Equal(t, 1, code, "exit code")
	assert.Empty(t, stdout, "no summary")
	require.True(t, strings.HasPrefix(stderr, "pgsvc validate: ") && strings.HasSuffix(stderr, "\n"), "%q", stderr)
	assertError(t, tc, strings.TrimSuffix(strings.TrimPrefix(stderr, "pgsvc validate: "), "\n"), map[string]string{"{inv}": inv})
}

func checkOverrideCommand(t *testing.T, tc badInput) {
	dir := t.TempDir()
	input := tc.input
	if input == "" {
		input = goodInventory
	}
	inv := writeFile(t, dir, "inv.yml", input)
	args := append([]string{tc.kind}, tc.args...)
	args = append(args, "--inventory", inv, "--etcd", "http://127.0.0.1:1", "--timeout", "300ms")
	code, stdout, stderr := runCLI(t, args...)
	assert.Equal(t, 1, code, "exit code")
	assert.Empty(t, stdout, "nothing reported as set")
	prefix := "pgsvc " + tc.kind + ": "
	require.True(t, strings.HasPrefix(stderr, prefix), "%q", stderr)
	msg := strings.TrimSuffix(strings.TrimPrefix(stderr, prefix), "\n")
	assert.NotContains(t, msg, "etcd", "refused before any etcd access")
	assert.NotContains(t, msg, "deadline", "refused before any etcd access")
	assertError(t, tc, msg, map[string]string{"{inv}": inv})
}

func checkOverrideValue(t *testing.T, tc badInput) {
	vars, err := dcs.ParseOverride([]byte(tc.input))
	require.Error(t, err)
	assert.Nil(t, vars, "no partial override")
	assertError(t, tc, err.Error(), nil)

	l := dcs.DefaultLayout()
	st := dcs.NewState()
	require.NoError(t, st.Put(l, l.OverridePrefix+"pg-test-2", []byte(`{"pg_weight":20}`)))
	err = st.Put(l, l.OverridePrefix+"pg-test-2", []byte(tc.input))
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "override /pgsvc/overrides/pg-test-2: "), err.Error())
	assert.Equal(t, selector.Overrides{}, st.Overrides, "a malformed override counts as absent, as in a fresh list: the previous one is not kept")
}

func checkMemberValue(t *testing.T, tc badInput) {
	m, err := dcs.ParseMember([]byte(tc.input))
	require.Error(t, err)
	assert.Equal(t, selector.Member{}, m, "no partial member")
	assertError(t, tc, err.Error(), nil)

	l := dcs.DefaultLayout()
	st := dcs.NewState()
	key := "/pg/pg-test/members/pg-test-2"
	require.NoError(t, st.Put(l, key, []byte(`{"role":"replica","state":"running"}`)))
	err = st.Put(l, key, []byte(tc.input))
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "patroni member "+key+": "), err.Error())
	assert.Empty(t, st.Clusters["pg-test"].Members, "a malformed member counts as absent, as in a fresh list: the previous one is not kept")
}

func checkReply(t *testing.T, tc badInput) {
	var err error
	switch tc.kind {
	case "servers-state":
		var slots map[string]dataplaneapi.SlotState
		slots, err = dataplaneapi.ParseServersState(tc.input)
		assert.Nil(t, slots, "no partial slots")
	case "stat":
		slots, perr := dataplaneapi.ParseServersState(stateHeader + stateLine1)
		require.NoError(t, perr)
		before := map[string]dataplaneapi.SlotState{}
		for k, v := range slots {
			before[k] = v
		}
		err = dataplaneapi.ParseStat(tc.input, slots)
		assert.True(t, reflect.DeepEqual(before, slots), "slots untouched: %v", slots)
	case "show-proc":
		var st dataplaneapi.MasterStatus
		st, err = dataplaneapi.ParseShowProc(tc.input)
		assert.Equal(t, dataplaneapi.MasterStatus{}, st, "no partial status")
	case "reply":
		line, ok := replyLines[tc.cmd]
		require.True(t, ok, tc.cmd)
		err = dataplaneapi.CheckReply(dataplaneapi.Command{Kind: tc.cmd, Backend: "b", Server: "s", Line: line}, tc.input)
	}
	require.Error(t, err)
	assertError(t, tc, err.Error(), nil)
}
