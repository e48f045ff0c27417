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
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgsvc/pgsvc/selector"
	"github.com/pgsvc/pgsvc/selector/jmes"
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

	var services, servers, refused, ansibleTypes, textWeights int
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
			gen := generate(rand.New(rand.NewSource(s)))
			invPath := filepath.Join(dir, "inventory.yml")
			require.NoError(t, os.WriteFile(invPath, gen.inventory, 0o644))

			checkHostvars(t, invPath)
			files, pigstyErr := renderPigstyFiles(t, dir, invPath, template, defaults)
			got, pgsvcErr := renderPgsvc(t, invPath)
			if len(gen.textWeights) > 0 {
				// pgsvc refuses on purpose, naming the value; Pigsty (when
				// nothing else failed) printed it as written, which is
				// what pgsvc's error says it would do.
				require.Error(t, pgsvcErr, "pg_weight %v is text to Ansible: pgsvc must refuse (inventory %s)", gen.textWeights, invPath)
				require.Regexp(t, `pg_weight "(`+strings.Join(gen.textWeights, "|")+`)" is text to Ansible, not a weight \(0-256\).*HAProxy would read \d+`, pgsvcErr.Error())
				if pigstyErr == nil {
					require.True(t, printsWeight(files, gen.textWeights), "Pigsty printed none of the weights %v as written", gen.textWeights)
				}
				textWeights++
				return
			}
			if pigstyErr != nil && strings.Contains(pigstyErr.Error(), `received: "unknown"`) {
				// Ansible's own types, not Python jmespath's: strings from
				// the inventory are AnsibleUnsafeText, which sort_by's key
				// check does not know, and records are HostVarsVars, which
				// keys() refuses. pgsvc evaluates these as plain strings
				// and objects (README: what differs).
				ansibleTypes++
				return
			}
			if pigstyErr != nil {
				// Python raised (a number compared with a string, a
				// function given the wrong type): Pigsty renders nothing,
				// and pgsvc must refuse for the same cause, not serve
				// something else nor refuse for another reason.
				require.Error(t, pgsvcErr, "Pigsty failed but pgsvc rendered (inventory %s):\n%s", invPath, pigstyErr)
				cause, ok := causeOf(pigstyErr.Error())
				require.True(t, ok, "unclassified Pigsty failure (inventory %s):\n%s", invPath, pigstyErr)
				require.Contains(t, pgsvcErr.Error(), cause, "pgsvc refused for another cause than Pigsty (inventory %s):\n%s", invPath, pigstyErr)
				refused++
				return
			}
			require.NoError(t, pgsvcErr, "inventory %s", invPath)
			want := make(map[string]listen, len(files))
			for name, data := range files {
				want[name] = parseListen(t, data)
			}
			require.Equal(t, sortedKeys(want), sortedKeys(got), "service files")
			for name, w := range want {
				require.Equal(t, w, got[name], "%s (inventory %s)", name, invPath)
				services++
				servers += len(w.servers)
			}
		})
	}
	t.Logf("%d rounds, %d services, %d servers: identical; %d rounds refused by both for the same cause; %d rounds Pigsty refused for Ansible's types; %d rounds with text weights refused by pgsvc alone (on purpose)",
		*rounds, services, servers, refused, ansibleTypes, textWeights)
}

// causeOf is the class of a Pigsty failure as the text pgsvc's refusal
// must hold: the comparison Python refused, the function whose argument
// it refused, or the dict.update error merge() ran into.
func causeOf(msg string) (string, bool) {
	if strings.Contains(msg, "not supported between instances of") {
		return "not supported between instances of", true
	}
	if m := regexp.MustCompile(`In function (\w+)\(\)`).FindStringSubmatch(msg); m != nil {
		return m[1] + "()", true
	}
	for _, text := range []string{"object is not iterable", "dictionary update sequence element", "unhashable type"} {
		if strings.Contains(msg, text) {
			return text, true
		}
	}
	return "", false
}

// printsWeight tells whether any rendered server line carries one of the
// weights as written.
func printsWeight(files map[string][]byte, weights []string) bool {
	for _, data := range files {
		for _, w := range weights {
			if regexp.MustCompile(`(?m)^\s*server .* weight ` + regexp.QuoteMeta(w) + `\b`).Match(data) {
				return true
			}
		}
	}
	return false
}

// renderPigstyFiles runs Pigsty's template the way
// roles/pgsql/tasks/service_local.yml does, once per cluster, inside a
// throwaway role whose defaults and template are Pigsty's own files (so
// inventory variables override role defaults with Ansible's real
// precedence), and returns each file it rendered, by name.
func renderPigstyFiles(t *testing.T, dir, inventory, template, defaults string) (map[string][]byte, error) {
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
	if err != nil {
		// Only a failure inside json_query is Pigsty refusing the
		// inventory; anything else is this harness's problem.
		require.Regexp(t, `JMESPath|jmespath|json_query|not supported between`, string(outb), "ansible-playbook:\n%s", outb)
		// The tail, then every failed item (the tail alone may have
		// scrolled past the reason).
		return nil, fmt.Errorf("ansible-playbook: %v\n%s\n%s", err, lastLines(outb, 15), failedItems(outb))
	}

	files, err := filepath.Glob(filepath.Join(out, "*.cfg"))
	require.NoError(t, err)
	got := make(map[string][]byte, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		got[filepath.Base(f)] = data
	}
	return got, nil
}

var record = flag.Bool("record", false, "TestPigstyCases: write Pigsty's output for each testdata case")

// TestPigstyCases renders each testdata case with Pigsty's template and
// requires the recorded output TestPigstyRecorded compares pgsvc with
// (-record writes it), so that a recording is Pigsty's own answer.
func TestPigstyCases(t *testing.T) {
	pigsty := os.Getenv("PIGSTY")
	require.NotEmpty(t, pigsty, "set PIGSTY to a Pigsty checkout")
	template := filepath.Join(pigsty, "roles/pgsql/templates/service.cfg")
	defaults := filepath.Join(pigsty, "roles/pgsql/defaults/main.yml")
	version, err := exec.Command("ansible", "--version").Output()
	require.NoError(t, err)
	jmespath := jmespathVersion(t, string(version))
	cases, err := filepath.Glob("testdata/*/inventory.yml")
	require.NoError(t, err)
	for _, inv := range cases {
		caseDir := filepath.Dir(inv)
		t.Run(filepath.Base(caseDir), func(t *testing.T) {
			checkHostvars(t, inv)
			files, err := renderPigstyFiles(t, t.TempDir(), inv, template, defaults)
			var b strings.Builder
			fmt.Fprintf(&b, "# Pigsty's %s rendered by %s with python3-jmespath %s (make pigsty-record)\n",
				"roles/pgsql/templates/service.cfg", strings.SplitN(string(version), "\n", 2)[0], jmespath)
			if err != nil {
				fmt.Fprintf(&b, "refused: %s\n", oneLineReason(err.Error()))
			}
			for _, name := range sortedKeys(files) {
				fmt.Fprintf(&b, "=== %s\n%s", name, files[name])
			}
			path := filepath.Join(caseDir, recordedFile)
			if *record {
				require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), b.String(), "Pigsty's output differs from the recording: make pigsty-record")
		})
	}
}

// jmespathVersion is the version of the jmespath module in the Python
// Ansible runs (the last "(path)" of `ansible --version`'s python line).
func jmespathVersion(t *testing.T, ansibleVersion string) string {
	m := regexp.MustCompile(`(?m)^\s*python version = .*\((/[^()]+)\)\s*$`).FindStringSubmatch(ansibleVersion)
	require.NotNil(t, m, "no python path in ansible --version:\n%s", ansibleVersion)
	out, err := exec.Command(m[1], "-c", "import jmespath; print(jmespath.__version__)").Output()
	require.NoError(t, err, "jmespath in %s", m[1])
	return strings.TrimSpace(string(out))
}

// oneLineReason is the line of Ansible's failure that names the JMESPath
// error.
func oneLineReason(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		if i := strings.Index(line, "JMESPathError"); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		if strings.Contains(line, "not supported between") || strings.Contains(line, "jmespath") {
			return strings.TrimSpace(line)
		}
	}
	return "ansible-playbook failed"
}

// failedItems is every line of the playbook's output that reports a
// failed task or loop item.
func failedItems(b []byte) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "failed: [") || strings.HasPrefix(line, "fatal: [") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// checkHostvars compares every host's variables as pgsvc reads the
// inventory with ansible-inventory's own reading of it: hosts, their
// order, and each variable with its type (int, float, string, null).
func checkHostvars(t *testing.T, inventory string) {
	cmd := exec.Command("ansible-inventory", "-i", inventory, "--list")
	cmd.Env = append(os.Environ(), "ANSIBLE_INVENTORY_UNPARSED_WARNING=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "ansible-inventory")
	var listed struct {
		Meta struct {
			Hostvars map[string]map[string]any `json:"hostvars"`
		} `json:"_meta"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&listed))
	inv, err := selector.LoadInventory(inventory)
	require.NoError(t, err)
	names := make([]string, 0, len(inv.Hosts))
	for _, h := range inv.Hosts {
		names = append(names, h.Name)
	}
	require.ElementsMatch(t, sortedKeys(listed.Meta.Hostvars), names, "hosts (inventory %s)", inventory)
	for _, h := range inv.Hosts {
		want := map[string]string{}
		for k, v := range listed.Meta.Hostvars[h.Name] {
			want[k] = typedJSON(v)
		}
		got := map[string]string{}
		for k, v := range h.Vars {
			switch k {
			case "inventory_hostname", "inventory_hostname_short", "group_names":
				continue // magic variables: ansible-inventory does not list them
			}
			got[k] = typedJSON(v)
		}
		require.Equal(t, want, got, "host %s (inventory %s)", h.Name, inventory)
	}
}

// typedJSON renders a variable so that 1 and 1.0 differ, as int and float.
func typedJSON(v any) string {
	switch t := v.(type) {
	case json.Number:
		if strings.ContainsAny(t.String(), ".eE") {
			return "float:" + t.String()
		}
		return "int:" + t.String()
	case int64, int:
		return fmt.Sprintf("int:%d", t)
	case float64:
		s := strconv.FormatFloat(t, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return "float:" + s
	case *jmes.Object: // ansible-inventory sorts keys: compared as a map
		m := map[string]any{}
		for _, k := range t.Keys() {
			m[k], _ = t.Get(k)
		}
		return typedJSON(m)
	case map[string]any:
		keys := sortedKeys(t)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + typedJSON(t[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = typedJSON(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%T:%s", v, b)
}

// generated is one random inventory and what the round expects of it.
type generated struct {
	inventory []byte
	// textWeights are pg_weight values Ansible reads as text that are not
	// plain decimal (`0o144`, `1e2`): Pigsty prints them as written and
	// HAProxy reads another weight, so pgsvc refuses the inventory on
	// purpose (README: what differs), naming the value.
	textWeights []string
}

// generate writes a random Pigsty v2+ inventory: 1–4 clusters of 1–5
// members with random roles, pg_seq spellings (1, "1", 01, 08), ports,
// weights (some text to Ansible), SSL and offline flags; global,
// cluster-level and host-level custom services with varied selectors,
// backups, dests (null included), checks and options; hosts in extra
// groups and directly under all.hosts; clusters whose services a proxy
// group carries (pg_service_provider); nested mappings whose written order
// selectors read; and pg_rto / pg_rto_plan / pg_default_service_dest at
// either level.
func generate(r *rand.Rand) generated {
	var g generated
	var b bytes.Buffer
	pick := func(opts ...string) string { return opts[r.Intn(len(opts))] }
	chance := func(p float64) bool { return r.Float64() < p }

	var render, infra, prioA, prioB []string
	var clusters bytes.Buffer
	// Quoted weights make `pg_weight > 50` an error in Pigsty (Python
	// compares str and int); such rounds leave that selector out, and so
	// do rounds with weights that are text to Ansible, whose refusal is
	// pgsvc's own.
	quotedWeights := chance(0.3)
	textWeight := chance(0.15)
	if textWeight {
		quotedWeights = true
	}
	proxied := false
	host := 0
	nclusters := 1 + r.Intn(4)
	for c := 0; c < nclusters; c++ {
		name := fmt.Sprintf("pg-c%d", c)
		size := 1 + r.Intn(5)
		fmt.Fprintf(&clusters, "    %s:\n      hosts:\n", name)
		seqs := r.Perm(size)
		// Some clusters count from 8, so that 0-prefixed pg_seq are 08 and
		// 09: strings to YAML 1.1 (instances pg-c0-08), where 01–07 are
		// octal integers.
		seqBase := 1
		if chance(0.3) {
			seqBase = 8
		}
		primary := r.Intn(size)
		// service_remote renders a provider cluster's services on its
		// primary only; service_local on every member (here: the first).
		provider := chance(0.25)
		proxied = proxied || provider
		renderAt := 0
		if provider {
			renderAt = primary
		}
		for i := 0; i < size; i++ {
			host++
			addr := fmt.Sprintf("10.9.%d.%d", c, 10+host)
			if i == renderAt {
				render = append(render, addr)
			}
			if chance(0.15) {
				infra = append(infra, addr)
			}
			if chance(0.2) {
				prioA = append(prioA, addr)
			}
			if chance(0.2) {
				prioB = append(prioB, addr)
			}
			role := pick("replica", "replica", "offline")
			if i == primary {
				role = "primary"
			}
			// pg_seq as Ansible reads it: an int, a quoted "N", or 0N (octal
			// to YAML 1.1 up to 07, the string "08"/"09" beyond, so the
			// instance is pg-c0-08). A string pg_seq compared with a number
			// makes Python raise: both must refuse that round.
			seq := seqBase + seqs[i]
			formats := []string{"pg_seq: %d", "pg_seq: %d", `pg_seq: "%d"`}
			if seq < 10 {
				formats = append(formats, "pg_seq: 0%d", "pg_seq: 0%d")
			}
			vars := []string{fmt.Sprintf(pick(formats...), seq), "pg_role: " + role}
			if chance(0.3) {
				// YAML 1.1 booleans, as Ansible reads them.
				vars = append(vars, "pg_offline_query: "+pick("true", "yes", "on", "false", "no", "off"))
			}
			if chance(0.4) {
				vars = append(vars, weight(r, quotedWeights))
			}
			if textWeight && (host == 1 || chance(0.3)) {
				w := pick("0o144", "1e2", "0o62", "5e1")
				g.textWeights = append(g.textWeights, w)
				vars = append(vars, "pg_weight: "+w)
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
			if chance(0.2) {
				// A nested mapping in another order than all.vars' meta.
				vars = append(vars, "meta: "+pick("{ a: 1, z: 2 }", "{ z: 3, a: 4 }"))
			}
			if i == renderAt && chance(0.2) {
				// The render host's own variables decide its cluster's
				// services (service_local runs on each member).
				vars = append(vars, "pg_default_service_dest: "+pick("postgres", "pgbouncer", "~"))
			}
			if chance(0.15) {
				// Host-level services: the render host's replace its
				// cluster's; another member's are never rendered here, so
				// they may even be broken (pgsvc validates a service from
				// the variables of the host that renders it).
				var svc bytes.Buffer
				if i == renderAt {
					writeServices(&svc, "", r, 7000+100*c, 1, quotedWeights)
				} else {
					svc.WriteString(`- { name: broken, port: 0o144, selector: "[? " }` + "\n")
				}
				vars = append(vars, "pg_services: [ "+strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(svc.String()), "- "), "\n")+" ]")
			}
			key := addr
			if chance(0.15) {
				key += ":22" // ansible_port; the host is still addr
			}
			fmt.Fprintf(&clusters, "        %s: { %s }\n", key, strings.Join(vars, ", "))
		}
		fmt.Fprintf(&clusters, "      vars:\n        pg_cluster: %s\n", name)
		if provider {
			clusters.WriteString("        pg_service_provider: proxy\n")
		} else if chance(0.1) {
			clusters.WriteString("        pg_service_provider: nosuch  # no such group: local services\n")
		}
		if chance(0.3) {
			fmt.Fprintf(&clusters, "        pg_rto: %s\n", pick("fast", "norm", "safe", "wide"))
		}
		if chance(0.2) {
			fmt.Fprintf(&clusters, "        pg_default_service_dest: %s\n", pick("postgres", "pgbouncer", "~"))
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
	b.WriteString("    meta: " + pick("{ z: 1, a: 2 }", "{ a: 1, z: 2 }", "{ <<: *common, z: 0 }") + "\n")
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
		fmt.Fprintf(&b, "    pg_default_service_dest: %s\n", pick("postgres", "pgbouncer", "~"))
	}
	if chance(0.4) {
		b.WriteString("    pg_services:\n")
		writeServices(&b, "      ", r, 5500, 1+r.Intn(2), quotedWeights)
	}
	// Hosts directly under all.hosts: a one-member cluster rendered there,
	// and a host in no group at all (ungrouped).
	solo := chance(0.3)
	if solo {
		b.WriteString("  hosts:\n")
		b.WriteString("    10.9.98.1: { pg_cluster: pg-solo, pg_seq: 1, pg_role: primary, pg_tag: a }\n")
		b.WriteString("    10.9.98.2: { pg_tag: b }\n")
		render = append(render, "10.9.98.1")
	}
	b.WriteString("  children:\n")
	b.WriteString("    render:\n      hosts:\n")
	for _, h := range render {
		fmt.Fprintf(&b, "        %s: {}\n", h)
	}
	if proxied {
		// The provider group: HAProxy nodes that are no cluster members.
		b.WriteString("    proxy:\n      hosts:\n        10.9.99.1: {}\n")
		if chance(0.5) {
			b.WriteString("        10.9.99.2: { pg_tag: a }\n")
		}
	}
	if len(infra) > 0 {
		b.WriteString("    infra:\n      hosts:\n")
		for i, h := range infra {
			fmt.Fprintf(&b, "        %s: { infra_seq: %d }\n", h, i+1)
		}
	}
	// Groups of the clusters' depth whose vars compete with theirs:
	// ansible_group_priority decides, then the name.
	for _, grp := range []struct {
		name  string
		hosts []string
	}{{"prio-a", prioA}, {"prio-b", prioB}} {
		if len(grp.hosts) == 0 {
			continue
		}
		fmt.Fprintf(&b, "    %s:\n      hosts:\n", grp.name)
		for _, h := range grp.hosts {
			fmt.Fprintf(&b, "        %s:\n", h)
		}
		fmt.Fprintf(&b, "      vars: { ansible_group_priority: %d, pg_default_service_dest: %s, pg_tag: %s }\n",
			r.Intn(3), pick("postgres", "pgbouncer", "~"), grp.name)
	}
	b.Write(clusters.Bytes())
	if chance(0.5) {
		// A parent defined after its children, one level up: its vars
		// reach their hosts, below theirs.
		b.WriteString("    pg-all:\n      children:\n")
		for c := 0; c < nclusters; c++ {
			fmt.Fprintf(&b, "        pg-c%d:\n", c)
		}
		fmt.Fprintf(&b, "      vars: { pg_tag: c, pg_default_service_dest: %s }\n", pick("postgres", "pgbouncer"))
	}
	g.inventory = b.Bytes()
	return g
}

// weight is a random pg_weight line: decimal, quoted (when quoted weights
// are allowed) or a YAML 1.1 integer (sexagesimal, 0-prefixed octal, hex).
func weight(r *rand.Rand, quoted bool) string {
	w := r.Intn(256)
	switch x := r.Float64(); {
	case quoted && x < 0.5:
		return fmt.Sprintf(`pg_weight: "%d"`, w)
	case x > 0.7:
		forms := []string{fmt.Sprintf("pg_weight: 0%o", w), fmt.Sprintf("pg_weight: 0x%x", w)}
		if w >= 60 {
			forms = append(forms, fmt.Sprintf("pg_weight: %d:%02d", w/60, w%60))
		}
		return forms[r.Intn(len(forms))]
	}
	return fmt.Sprintf("pg_weight: %d", w)
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
		// Python's ordering of strings, its functions, and multi-select
		// hashes whose written order decides backup order.
		"[? pg_tag > 'a' ]",
		"[? inventory_hostname >= '10.9.1' ]",
		"values({r: [? pg_role == 'replica' ], p: [? pg_role == 'primary' ]})[]",
		"values({p: [? pg_role == 'primary' ], o: [? pg_role == 'offline' ]})[]",
		"[? to_string(pg_seq) == '1' ]",
		"[? to_number(to_string(pg_seq)) > `1` ]",
		"[? contains(group_names, 'prio-a') ]",
		"[? starts_with(inventory_hostname, '10.9.0') ]",
		// contains() with booleans (Python's `in`: 1 == True), to_number
		// with the whitespace int() strips.
		"[? contains([`true`], pg_offline_query) ]",
		"[? contains(`[1, true]`, pg_seq) ]",
		"[? pg_seq == to_number(' 2 ') ]",
		// A function after a null in a chain still runs: type(null) is
		// "null"; length(null) raises where pg_tag is unset.
		"[? missing.type(@) ]",
		"[? pg_tag.not_null(@, 'z') == 'z' ]",
		"[? pg_tag.length(@) ]",
		// Mappings in the order written; merge() takes pairs.
		"[? keys(meta)[0] == 'z' ]",
		"[? values(meta)[-1] == `2` ]",
		"[? merge(meta, `[[\"z\", 5]]`).z == `5` && keys(merge(`{}`, meta))[0] == 'a' ]",
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
			fields = append(fields, "dest: "+pick("default", "postgres", "pgbouncer", "5432", "15432", "~"))
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
