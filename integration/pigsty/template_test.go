//go:build pigsty

// Package pigsty checks pgsvc's rendering against Pigsty's own service
// template, rendered by Ansible, over randomly generated inventories.
//
// Pigsty is not part of this repository and CI cannot download it, so this
// suite runs on demand (make pigsty-diff PIGSTY=/path/to/pigsty). It needs
// ansible-playbook with the community.general collection and python3-jmespath
// (Debian: apt-get install ansible python3-jmespath). It takes the role
// defaults and roles/pgsql/templates/service.cfg from the checkout, so it
// compares against whatever Pigsty version is checked out (v4.x layout).
package pigsty

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
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

var (
	rounds = flag.Int("rounds", 20, "random inventories to compare")
	seed   = flag.Int64("seed", 1, "first random seed; round i uses seed+i")
	keep   = flag.Bool("keep", false, "keep the work directory of each round")
)

// TestTemplateEquivalence renders random inventories with Pigsty's template
// and with pgsvc and requires the same listen sections: bind, mode, maxconn,
// balance, checks, default-server, and the same enabled servers with the same
// address, port, check port, weight, backup flag and check-ssl.
func TestTemplateEquivalence(t *testing.T) {
	pigsty := os.Getenv("PIGSTY")
	if pigsty == "" {
		t.Fatal("set PIGSTY to a Pigsty checkout (roles/pgsql/templates/service.cfg must exist)")
	}
	template := filepath.Join(pigsty, "roles/pgsql/templates/service.cfg")
	defaults := filepath.Join(pigsty, "roles/pgsql/defaults/main.yml")
	for _, f := range []string{template, defaults} {
		_, err := os.Stat(f)
		require.NoError(t, err, "Pigsty checkout at %s", pigsty)
	}
	_, err := exec.LookPath("ansible-playbook")
	require.NoError(t, err, "install ansible and python3-jmespath")

	var services, servers int
	for i := 0; i < *rounds; i++ {
		s := *seed + int64(i)
		t.Run(fmt.Sprintf("seed-%d", s), func(t *testing.T) {
			dir := t.TempDir()
			if *keep {
				var err error
				dir, err = os.MkdirTemp("", fmt.Sprintf("pigsty-diff-%d-", s))
				require.NoError(t, err)
				t.Logf("work directory %s", dir)
			}
			inv := generate(rand.New(rand.NewSource(s)))
			invPath := filepath.Join(dir, "inventory.yml")
			require.NoError(t, os.WriteFile(invPath, inv, 0o644))

			want := renderPigsty(t, dir, invPath, template, defaults)
			got := renderPgsvc(t, invPath)
			require.Equal(t, sortedKeys(want), sortedKeys(got), "service files")
			for name, w := range want {
				require.Equal(t, w, got[name], "%s (inventory %s)", name, invPath)
				services++
				servers += len(w.servers)
			}
		})
	}
	t.Logf("%d rounds, %d services, %d servers: identical", *rounds, services, servers)
}

// renderPigsty runs Pigsty's template the way roles/pgsql/tasks/service_local.yml
// does, once per cluster, inside a throwaway role whose defaults and template
// are Pigsty's own files (so inventory variables override role defaults with
// Ansible's real precedence).
func renderPigsty(t *testing.T, dir, inventory, template, defaults string) map[string]listen {
	role := filepath.Join(dir, "roles/svc")
	for _, sub := range []string{"defaults", "templates", "tasks"} {
		require.NoError(t, os.MkdirAll(filepath.Join(role, sub), 0o755))
	}
	require.NoError(t, os.Symlink(defaults, filepath.Join(role, "defaults/main.yml")))
	require.NoError(t, os.Symlink(template, filepath.Join(role, "templates/service.cfg")))
	out := filepath.Join(dir, "pigsty")
	require.NoError(t, os.MkdirAll(out, 0o755))
	tasks := `- name: render every service of the cluster
  template: src=service.cfg dest=` + out + `/{{ pg_cluster }}-{{ item.name }}.cfg
  vars:
    service: "{{ item }}"
    pg_cluster_members_query: "[@.*][0][?pg_cluster=='{{ pg_cluster }}']"
  with_items: "{{ pg_default_services + pg_services }}"
`
	require.NoError(t, os.WriteFile(filepath.Join(role, "tasks/main.yml"), []byte(tasks), 0o644))
	play := "- hosts: render\n  connection: local\n  gather_facts: false\n  roles: [svc]\n"
	playbook := filepath.Join(dir, "play.yml")
	require.NoError(t, os.WriteFile(playbook, []byte(play), 0o644))

	cmd := exec.Command("ansible-playbook", "-i", inventory, playbook)
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_LOCALHOST_WARNING=0", "ANSIBLE_INVENTORY_UNPARSED_WARNING=0", "ANSIBLE_FORKS=8")
	outb, err := cmd.CombinedOutput()
	require.NoError(t, err, "ansible-playbook:\n%s", outb)

	files, err := filepath.Glob(filepath.Join(out, "*.cfg"))
	require.NoError(t, err)
	got := make(map[string]listen, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		got[filepath.Base(f)] = parseListen(t, data)
	}
	return got
}

func renderPgsvc(t *testing.T, inventory string) map[string]listen {
	model, err := selector.Load(inventory)
	require.NoError(t, err)
	clusters, err := model.Select("", nil)
	require.NoError(t, err)
	d, err := reconcile.Compute(clusters, reconcile.Live{}, false)
	require.NoError(t, err)
	files, err := dataplaneapi.Files(&d, dataplaneapi.LayoutService)
	require.NoError(t, err)
	got := make(map[string]listen, len(files))
	for name, data := range files {
		got[name] = parseListen(t, data)
	}
	return got
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

// generate writes a random Pigsty v2+ inventory: 1–4 clusters of 1–5
// members with random roles, ports, weights, SSL and offline flags, global
// and cluster-level custom services with varied selectors, backups, dests,
// checks and options, hosts in extra groups, and pg_rto / pg_rto_plan /
// pg_default_service_dest at either level.
func generate(r *rand.Rand) []byte {
	var b bytes.Buffer
	pick := func(opts ...string) string { return opts[r.Intn(len(opts))] }
	chance := func(p float64) bool { return r.Float64() < p }

	var render, infra []string
	var clusters bytes.Buffer
	// Quoted weights make `pg_weight > 50` an error in Pigsty (Python
	// compares str and int); such rounds leave that selector out.
	quotedWeights := chance(0.3)
	host := 0
	nclusters := 1 + r.Intn(4)
	for c := 0; c < nclusters; c++ {
		name := fmt.Sprintf("pg-c%d", c)
		size := 1 + r.Intn(5)
		fmt.Fprintf(&clusters, "    %s:\n      hosts:\n", name)
		seqs := r.Perm(size)
		primary := r.Intn(size)
		for i := 0; i < size; i++ {
			host++
			addr := fmt.Sprintf("10.9.%d.%d", c, 10+host)
			if i == 0 {
				render = append(render, addr)
			}
			if chance(0.15) {
				infra = append(infra, addr)
			}
			role := pick("replica", "replica", "offline")
			if i == primary {
				role = "primary"
			}
			vars := []string{fmt.Sprintf("pg_seq: %d", seqs[i]+1), "pg_role: " + role}
			if chance(0.3) {
				// YAML 1.1 booleans, as Ansible reads them.
				vars = append(vars, "pg_offline_query: "+pick("true", "yes", "on", "false", "no", "off"))
			}
			if chance(0.4) {
				w := r.Intn(256)
				format := "pg_weight: %d"
				if quotedWeights && chance(0.5) {
					format = `pg_weight: "%d"`
				}
				vars = append(vars, fmt.Sprintf(format, w))
			}
			if chance(0.2) {
				vars = append(vars, "pg_port: "+pick("5432", "5532"))
			}
			if chance(0.2) {
				vars = append(vars, "pgbouncer_port: "+pick("6432", "6532"))
			}
			if chance(0.2) {
				vars = append(vars, "patroni_port: "+pick("8008", "8018"))
			}
			if chance(0.15) {
				vars = append(vars, "patroni_ssl_enabled: "+pick("true", "false", "yes", "'yes'", "'true'", "'off'"))
			}
			if chance(0.1) {
				vars = append(vars, "<<: *common")
			}
			if chance(0.3) {
				vars = append(vars, "pg_tag: "+pick("a", "b"))
			}
			fmt.Fprintf(&clusters, "        %s: { %s }\n", addr, strings.Join(vars, ", "))
		}
		fmt.Fprintf(&clusters, "      vars:\n        pg_cluster: %s\n", name)
		if chance(0.3) {
			fmt.Fprintf(&clusters, "        pg_rto: %s\n", pick("fast", "norm", "safe", "wide"))
		}
		if chance(0.2) {
			fmt.Fprintf(&clusters, "        pg_default_service_dest: %s\n", pick("postgres", "pgbouncer"))
		}
		if chance(0.15) {
			clusters.WriteString("        pg_default_services:\n")
			clusters.WriteString("          - { name: primary, port: 5433, dest: default, check: /primary, selector: \"[]\" }\n")
			clusters.WriteString("          - { name: replica, port: 5434, dest: default, check: /read-only, selector: \"[]\", backup: \"[? pg_role == `primary` ]\" }\n")
		}
		if chance(0.5) {
			clusters.WriteString("        pg_services:\n")
			writeServices(&clusters, "          ", r, 6000+100*c, 1+r.Intn(3), quotedWeights)
		}
	}

	// pg_rto is always set: without it pgsvc renders the v2/v3 seed line
	// where v4's template takes its role-default norm row (documented).
	// A numeric pg_rto only comes with a pg_rto_plan, for the same reason.
	b.WriteString("all:\n  vars:\n")
	// An anchor some hosts merge (`<<: *common`), as hand-written
	// inventories do.
	b.WriteString("    common_vars: &common { pg_tag: b, pgbouncer_port: 6532 }\n")
	if chance(0.4) {
		b.WriteString("    pg_rto_plan:\n")
		for _, mode := range []string{"fast", "norm", "safe", "wide"} {
			fmt.Fprintf(&b, "      %s: [ 30, 5, 10, 25, 5, '%ds', '%dms', '%ds', %d, %d ]\n",
				mode, 1+r.Intn(4), 200+100*r.Intn(9), 1+r.Intn(5), 1+r.Intn(4), 1+r.Intn(4))
		}
		fmt.Fprintf(&b, "    pg_rto: %s\n", pick("fast", "norm", "safe", "wide", "30", "bogus"))
	} else {
		fmt.Fprintf(&b, "    pg_rto: %s\n", pick("fast", "norm", "safe", "wide", "bogus"))
	}
	if chance(0.3) {
		fmt.Fprintf(&b, "    pg_default_service_dest: %s\n", pick("postgres", "pgbouncer"))
	}
	if chance(0.4) {
		b.WriteString("    pg_services:\n")
		writeServices(&b, "      ", r, 5500, 1+r.Intn(2), quotedWeights)
	}
	b.WriteString("  children:\n")
	b.WriteString("    render:\n      hosts:\n")
	for _, h := range render {
		fmt.Fprintf(&b, "        %s: {}\n", h)
	}
	if len(infra) > 0 {
		b.WriteString("    infra:\n      hosts:\n")
		for i, h := range infra {
			fmt.Fprintf(&b, "        %s: { infra_seq: %d }\n", h, i+1)
		}
	}
	b.Write(clusters.Bytes())
	return b.Bytes()
}

// writeServices appends n custom v2 services with ports from firstPort.
func writeServices(b *bytes.Buffer, indent string, r *rand.Rand, firstPort, n int, quotedWeights bool) {
	pick := func(opts ...string) string { return opts[r.Intn(len(opts))] }
	selectors := []string{
		"[]",
		"[? pg_role == `replica` ]",
		"[? pg_role != `primary` ]",
		"[? pg_offline_query ]",
		"[? pg_seq <= `2` ]",
		"[? pg_weight > `50` ]",
		"[? pg_tag == 'a' ]",
		"reverse(sort_by(@, &pg_seq))",
		"[? pg_role == `replica` ] | [:1]",
		"[? patroni_ssl_enabled ]",
		"[? contains(group_names, 'infra') ]",
		"[? inventory_hostname_short != '10' ]",
	}
	if quotedWeights {
		selectors = slices.DeleteFunc(selectors, func(s string) bool { return strings.Contains(s, "pg_weight") })
	}
	for i := 0; i < n; i++ {
		fields := []string{
			fmt.Sprintf("name: svc%d", firstPort+i),
			fmt.Sprintf(pick("port: %d", `port: "%d"`), firstPort+i),
			fmt.Sprintf("selector: %q", pick(selectors...)),
		}
		if r.Intn(2) == 0 {
			fields = append(fields, fmt.Sprintf("backup: %q", pick(selectors...)))
		}
		if r.Intn(3) > 0 {
			fields = append(fields, "dest: "+pick("default", "postgres", "pgbouncer", "5432", "15432"))
		}
		if r.Intn(2) == 0 {
			fields = append(fields, "check: "+pick("/primary", "/replica", "/read-only", "/health", "/sync"))
		}
		if r.Intn(4) == 0 {
			fields = append(fields, "maxconn: "+pick("100", "3000"))
		}
		if r.Intn(4) == 0 {
			fields = append(fields, "balance: "+pick("leastconn", "roundrobin", "first"))
		}
		if r.Intn(5) == 0 {
			fields = append(fields, "ip: "+pick("'*'", "127.0.0.1"))
		}
		if r.Intn(5) == 0 {
			fields = append(fields, "options: 'inter 2s fastinter 500ms rise 2 fall 2'")
		}
		fmt.Fprintf(b, "%s- { %s }\n", indent, strings.Join(fields, ", "))
	}
}
