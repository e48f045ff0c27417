//go:build integration

// Package integration holds the end-to-end suite: the compose lab
// (docker-compose.yml: etcd, three Patroni/PostgreSQL nodes with pgbouncer,
// HAProxy with pgsvc) driven the way operators drive it, on the flavour LAB
// names (trixie, the default, or bookworm). Run with
// `LAB=bookworm go test -tags integration ./integration`; make test runs
// every flavour.
package integration

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgsvc/pgsvc/dataplaneapi"
)

const (
	haproxyContainer = "pgsvc-haproxy"
	etcdContainer    = "pgsvc-etcd"
)

var nodes = map[string]string{"pg-test-1": "10.10.10.11", "pg-test-2": "10.10.10.12", "pg-test-3": "10.10.10.13"}

// members are the cluster's instances in inventory order.
var members = []string{"pg-test-1", "pg-test-2", "pg-test-3"}

// The inventory (fixtures/inventory/lab.yml): pg-test-1 is the primary,
// pg-test-3 serves offline queries.
const inventoryPrimary = "pg-test-1"

var inventoryOffline = map[string]bool{"pg-test-3": true}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// TestMain brings the lab up once (make demo: build, start, wait until
// Patroni and HAProxy are ready) and tears it down afterwards. Without a
// Docker engine it fails, never skips: the suite is built only with
// -tags integration (make e2e, part of make test), so whoever runs it
// asked for the lab, and a skip would pass CI with no end-to-end test run.
func TestMain(m *testing.M) {
	if _, err := exec.LookPath("docker"); err != nil {
		fmt.Println("FAIL integration: no docker CLI: the compose lab needs a Docker engine (integration/lab/install-deps.sh demo installs it; .ci/run does)")
		os.Exit(1)
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		fmt.Printf("FAIL integration: the Docker engine is not reachable (is dockerd running, may this user use it?): %v\n%s", err, out)
		os.Exit(1)
	}
	lab := labFlavour()
	fmt.Printf("integration: lab flavour %s\n", lab)
	up := exec.Command("make", "demo", "LAB="+lab)
	up.Dir = repoRoot()
	up.Stdout, up.Stderr = os.Stdout, os.Stderr
	if err := up.Run(); err != nil {
		fmt.Printf("integration: make demo failed: %v\n", err)
		down()
		os.Exit(1)
	}
	stack = labStack()
	fmt.Printf("integration: %s lab: %s\n", lab, stack)
	code := m.Run()
	fmt.Printf("integration: the measurements above are from the %s lab: %s\n", lab, stack)
	if os.Getenv("PGSVC_KEEP_LAB") == "" {
		down()
	}
	os.Exit(code)
}

// labFlavour is the lab the suite runs on: $LAB, trixie by default (as the
// Makefile's).
func labFlavour() string {
	if l := os.Getenv("LAB"); l != "" {
		return l
	}
	return "trixie"
}

// stack names the lab's versions, for the measured tables.
var stack string

// labStack reads the versions the lab's containers run.
func labStack() string {
	version := func(container string, argv ...string) string {
		out, err := exec.Command("docker", append([]string{"exec", container}, argv...)...).CombinedOutput()
		if err != nil {
			return "unknown (" + strings.TrimSpace(string(out)) + ")"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return strings.Join([]string{
		version(haproxyContainer, "haproxy", "-v"),
		version(members[0], "patroni", "--version"),
		version(members[0], "sh", "-c", "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/postgres --version"),
		version(etcdContainer, "etcd", "--version"),
		version(members[0], "pgbouncer", "--version"),
	}, "; ")
}

func down() {
	c := exec.Command("make", "demo-down", "LAB="+labFlavour())
	c.Dir = repoRoot()
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	_ = c.Run()
}

// run runs a command and returns its combined output and exit code.
func run(t testing.TB, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out), code
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, code := run(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

// pgsvc runs a pgsvc command inside the HAProxy container with its config.
func pgsvc(t testing.TB, args ...string) (string, int) {
	t.Helper()
	return run(t, "docker", append([]string{"exec", haproxyContainer, "lab-pgsvc"}, args...)...)
}

// socket sends one command to HAProxy's stats socket in the proxy container.
func socket(t testing.TB, command string) string {
	t.Helper()
	return socketOn(t, haproxyContainer, command)
}

// socketOn sends one command to the stats socket of a container's HAProxy
// (the proxy's, or a DB node's own).
func socketOn(t testing.TB, container, command string) string {
	t.Helper()
	return mustRun(t, "docker", "exec", container, "lab-haproxy-cli", "admin", command)
}

// haproxies are the lab's HAProxy containers that run now: the proxy node
// and each running DB node (each with its own HAProxy and pgsvc --node).
func haproxies(t testing.TB) []string {
	t.Helper()
	out := []string{haproxyContainer}
	for _, n := range members {
		if o, _ := run(t, "docker", "inspect", "-f", "{{.State.Running}}", n); strings.TrimSpace(o) == "true" {
			out = append(out, n)
		}
	}
	return out
}

// everyHAProxy waits until got(container) is want on every running HAProxy.
func everyHAProxy(t testing.TB, timeout time.Duration, what, want string, got func(container string) string) {
	t.Helper()
	for _, c := range haproxies(t) {
		waitEqual(t, timeout, what+" on "+c+"'s HAProxy", want, func() string { return got(c) })
	}
}

// haproxyProc is the HAProxy master as its master CLI's `show proc` reports
// it: a reload increments Reloads and replaces the worker; a restart
// (container restarted) starts a new master at 0 reloads.
type haproxyProc struct {
	Master  string // the master's pid
	Reloads int
	Failed  int
	Workers []int
}

func (p haproxyProc) String() string {
	return fmt.Sprintf("master %s, %d reloads (%d failed), workers %v", p.Master, p.Reloads, p.Failed, p.Workers)
}

// masterProc reads `show proc` from HAProxy's master socket.
func masterProc(t testing.TB) haproxyProc {
	t.Helper()
	out := mustRun(t, "docker", "exec", haproxyContainer, "lab-haproxy-cli", "master", "show proc")
	st, err := dataplaneapi.ParseShowProc(out)
	if err != nil {
		t.Fatal(err)
	}
	p := haproxyProc{Reloads: st.Reloads, Failed: st.Failed, Workers: st.Workers}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "master" {
			p.Master = f[0]
		}
	}
	if len(p.Workers) != 1 {
		t.Fatalf("show proc: want exactly one current worker:\n%s", out)
	}
	return p
}

// enabled lists a service's slots that take traffic (admin ready), sorted.
func enabled(t testing.TB, service string) string {
	t.Helper()
	return enabledOn(t, haproxyContainer, service)
}

// enabledOn is enabled on a container's HAProxy.
func enabledOn(t testing.TB, container, service string) string {
	t.Helper()
	slots, err := dataplaneapi.ParseServersState(socketOn(t, container, "show servers state pg-test-"+service))
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for name, s := range slots {
		if s.Admin == dataplaneapi.AdminReady {
			on = append(on, name)
		}
	}
	sort.Strings(on)
	return strings.Join(on, " ")
}

// serving lists a service's slots that take new connections: enabled and
// UP by HAProxy's health checks, sorted.
func serving(t testing.TB, service string) string {
	t.Helper()
	return servingOn(t, haproxyContainer, service)
}

// servingOn is serving on a container's HAProxy.
func servingOn(t testing.TB, container, service string) string {
	t.Helper()
	var on []string
	for name, s := range backendOn(t, container, service).Slots {
		if s.Admin == dataplaneapi.AdminReady && s.Status == "UP" {
			on = append(on, name)
		}
	}
	sort.Strings(on)
	return strings.Join(on, " ")
}

// sessions is a slot's current session count (show stat scur).
func sessions(t testing.TB, service, slot string) int {
	t.Helper()
	return statCount(t, service, slot, "scur")
}

// statCount is a numeric column of a slot's row in show stat (scur: current
// sessions, chkdown: UP to DOWN transitions, ...).
func statCount(t testing.TB, service, slot, column string) int {
	t.Helper()
	out := socket(t, "show stat pg-test-"+service+" 4 -1")
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.TrimSpace(out), "# "))).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("show stat pg-test-%s: %v\n%s", service, err, out)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if _, ok := col[column]; !ok {
		t.Fatalf("show stat pg-test-%s: no column %s", service, column)
	}
	for _, row := range rows[1:] {
		if row[col["svname"]] == slot {
			n, err := strconv.Atoi(row[col[column]])
			if err != nil {
				t.Fatalf("show stat pg-test-%s %s: %s %q", service, slot, column, row[col[column]])
			}
			return n
		}
	}
	t.Fatalf("show stat pg-test-%s: no server %s\n%s", service, slot, out)
	return 0
}

// staticEnabled lists the slots `pgsvc render` enables for a service from
// the installed inventory alone (no etcd, no overrides): the static view.
func staticEnabled(t testing.TB, service string) string {
	t.Helper()
	out := mustRun(t, "docker", "exec", haproxyContainer,
		"pgsvc", "render", "--inventory", "/etc/pgsvc/inventory.yml", "--cluster", "pg-test")
	var on []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "listen":
			in = f[1] == "pg-test-"+service
		case in && len(f) > 1 && f[0] == "server" && f[len(f)-1] != "disabled":
			on = append(on, f[1])
		}
	}
	if len(on) == 0 {
		t.Fatalf("pgsvc render: no enabled server in pg-test-%s:\n%s", service, out)
	}
	sort.Strings(on)
	return strings.Join(on, " ")
}

func backend(t testing.TB, service string) dataplaneapi.BackendState {
	t.Helper()
	return backendOn(t, haproxyContainer, service)
}

// backendOn is a service's backend on a container's HAProxy.
func backendOn(t testing.TB, container, service string) dataplaneapi.BackendState {
	t.Helper()
	slots, err := dataplaneapi.ParseServersState(socketOn(t, container, "show servers state pg-test-"+service))
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplaneapi.ParseStat(socketOn(t, container, "show stat pg-test-"+service+" 4 -1"), slots); err != nil {
		t.Fatal(err)
	}
	return dataplaneapi.BackendState{Name: service, Slots: slots}
}

// leader is the Patroni leader key's value ("" when absent).
func leader(t testing.TB) string {
	t.Helper()
	out, _ := run(t, "docker", "exec", etcdContainer, "etcdctl", "--endpoints=http://127.0.0.1:2379",
		"get", "/pg/pg-test/leader", "--print-value-only")
	return strings.TrimSpace(out)
}

// memberRole is a member's role in etcd ("" when its key is absent), with
// Patroni 3's "master" read as Patroni 4's "primary".
func memberRole(t testing.TB, name string) string {
	t.Helper()
	out, _ := run(t, "docker", "exec", etcdContainer, "etcdctl", "--endpoints=http://127.0.0.1:2379",
		"get", "/pg/pg-test/members/"+name, "--print-value-only")
	for _, role := range []string{"master", "primary", "replica", "demoted", "promoted"} {
		if strings.Contains(out, `"role":"`+role+`"`) {
			return primaryRole(role)
		}
	}
	return ""
}

// primaryRole reads Patroni 3's role "master" as Patroni 4's "primary".
func primaryRole(role string) string {
	if role == "master" {
		return "primary"
	}
	return role
}

// eventually polls cond until it holds; conditions read real state (etcd,
// HAProxy, PostgreSQL), the only signals a container lab offers.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			out, _ := run(t, "docker", "logs", "--tail", "40", haproxyContainer)
			t.Fatalf("timed out after %s waiting for %s\nhaproxy/pgsvc log tail:\n%s", timeout, what, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// converged waits until pgsvc has nothing left to do (reconcile --dry-run
// exit 0) on every running HAProxy: the proxy's and each node's own.
func converged(t testing.TB) {
	t.Helper()
	for _, c := range haproxies(t) {
		eventually(t, 60*time.Second, "pgsvc reconcile --dry-run to report nothing pending on "+c, func() bool {
			_, code := run(t, "docker", "exec", c, "lab-pgsvc", "reconcile", "--dry-run")
			return code == 0
		})
	}
}

// healthy waits until Patroni has a running leader with role primary and
// two running replicas, all in etcd.
func healthy(t testing.TB) string {
	t.Helper()
	var l string
	eventually(t, 120*time.Second, "a Patroni leader and two replicas", func() bool {
		l = leader(t)
		if l == "" || memberRole(t, l) != "primary" {
			return false
		}
		replicas := 0
		for n := range nodes {
			if n != l && memberRole(t, n) == "replica" {
				replicas++
			}
		}
		return replicas == 2
	})
	return l
}

// waitEqual polls got until it returns want; on timeout it fails with the
// last value seen.
func waitEqual(t testing.TB, timeout time.Duration, what, want string, got func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for last := got(); last != want; last = got() {
		if time.Now().After(deadline) {
			out, _ := run(t, "docker", "logs", "--tail", "40", haproxyContainer)
			t.Fatalf("timed out after %s waiting for %s: want %q, have %q\nhaproxy/pgsvc log tail:\n%s", timeout, what, want, last, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lead makes node the Patroni leader (a planned switchover when another
// member leads) and waits until pgsvc has converged on it.
func lead(t testing.TB, node string) {
	t.Helper()
	if from := healthy(t); from != node {
		patronictl(t, from, "switchover", "--leader", from, "--candidate", node, "--force")
		eventually(t, 60*time.Second, node+" to lead", func() bool { return leader(t) == node && memberRole(t, node) == "primary" })
		healthy(t)
	}
	converged(t)
}

func patronictl(t testing.TB, node string, args ...string) string {
	t.Helper()
	return mustRun(t, "docker", append([]string{"exec", node, "patronictl", "-c", "/etc/patroni/patroni.yml"}, args...)...)
}

// patronictlRun is patronictl whose failure is an answer, not a fault.
func patronictlRun(t testing.TB, node string, args ...string) (string, int) {
	t.Helper()
	return run(t, "docker", append([]string{"exec", node, "patronictl", "-c", "/etc/patroni/patroni.yml"}, args...)...)
}

func other(l string, not ...string) string {
	for _, n := range members {
		skip := n == l
		for _, x := range not {
			skip = skip || n == x
		}
		if !skip {
			return n
		}
	}
	return ""
}
