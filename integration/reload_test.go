//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"

	"github.com/pgsvc/pgsvc/dataplaneapi"
)

// routing collects, per reload, where new sessions through 5433 landed.
var routing []string

// routeProbe opens a new session through a service every 20 ms and records
// the node it reached and whether that node is in recovery: the sessions a
// client would have sent to a replica through the primary port.
type routeProbe struct {
	dsn string

	mu       sync.Mutex
	sessions []session
}

type session struct {
	node     string
	recovery bool
	err      error
}

func (p *routeProbe) run(ctx context.Context) {
	for ctx.Err() == nil {
		s := p.open(ctx)
		if s.err != nil && ctx.Err() != nil {
			return // stopped mid-attempt: says nothing about the service
		}
		p.mu.Lock()
		p.sessions = append(p.sessions, s)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *routeProbe) open(ctx context.Context) session {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return session{err: err}
	}
	defer conn.Close(context.Background())
	var s session
	s.err = conn.QueryRow(ctx, "SELECT trim(pg_read_file('/etc/hostname'), E'\\n '), pg_is_in_recovery()").Scan(&s.node, &s.recovery)
	return s
}

// tally counts the sessions, those that reached another node than leader
// (or a node in recovery), and those that failed.
func (p *routeProbe) tally(leader string) (total, elsewhere, failed int, where map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	where = map[string]int{}
	for _, s := range p.sessions {
		total++
		switch {
		case s.err != nil:
			failed++
		case s.node != leader || s.recovery:
			elsewhere++
			where[s.node]++
		}
	}
	return total, elsewhere, failed, where
}

// labInventory is the inventory pgsvc reads in the HAProxy container.
const labInventory = "/etc/pgsvc/inventory.yml"

// installInventory replaces the lab's inventory atomically (pgsvc never
// reads half a file) with the original plus extra lines for pg-test's vars.
func installInventory(t testing.TB, extra string) {
	t.Helper()
	script := fmt.Sprintf("test -f /tmp/inventory.orig || cp %[1]s /tmp/inventory.orig; { cat /tmp/inventory.orig; printf '%%s' '%[2]s'; } > %[1]s.new && mv %[1]s.new %[1]s",
		labInventory, extra)
	mustRun(t, "docker", "exec", haproxyContainer, "sh", "-c", script)
}

// After any reload, a primary service routes new sessions only to the
// leader. Pins: a new worker starts every enabled slot UP until its first
// check, and in Pigsty's primary service every member is enabled (the
// /primary check decides), so in the 3 s after a reload that added a
// service 23 of ~187 new sessions reached replicas. pgsvc saves the
// servers' state to HAProxy's server-state-file before each reload it makes
// (the new worker loads it: the replicas start down) and forces health from
// Patroni's facts as soon as any new worker answers. External reloads (the
// master CLI's `reload`, systemd) find the state file empty, as pgsvc left
// it: they are measured and reported, not asserted (see the README).
// proc becomes the master's `show proc` after the reloads.
func testReloadRouting(t *testing.T, proc *haproxyProc) {
	primary := healthy(t)
	converged(t)
	defer installInventory(t, "") // the original, also when the test fails half-way
	measure := func(what string, reload func()) (int, int) {
		before := masterProc(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		probe := &routeProbe{dsn: viaHAProxy}
		go probe.run(ctx)
		time.Sleep(time.Second) // sessions before the reload, as a baseline
		reload()
		eventually(t, 60*time.Second, "HAProxy to reload ("+what+")", func() bool {
			// The master re-executes itself: its socket refuses meanwhile.
			out, code := run(t, "docker", "exec", haproxyContainer, "lab-haproxy-cli", "master", "show proc")
			st, err := dataplaneapi.ParseShowProc(out)
			return code == 0 && err == nil && st.Reloads > before.Reloads && len(st.Workers) == 1 && st.Workers[0] != before.Workers[0]
		})
		time.Sleep(3 * time.Second)
		cancel()
		total, elsewhere, failed, where := probe.tally(primary)
		routing = append(routing, fmt.Sprintf("%-52s %3d of %3d new sessions reached a non-leader %v, %d failed",
			what, elsewhere, total, where, failed))
		t.Logf("%s: %d of %d sessions through 5433 reached a non-leader (%v), %d failed", what, elsewhere, total, where, failed)
		return elsewhere, failed
	}

	elsewhere, failed := measure("pgsvc's reload, service added", func() {
		installInventory(t, "        pg_services: [ { name: extra, port: 5440, selector: \"[]\" } ]\n")
	})
	assert.Zero(t, elsewhere, "no new session through the primary port reaches a non-leader after pgsvc's reload")
	assert.Zero(t, failed, "no session fails across pgsvc's reload")
	converged(t)
	assert.True(t, strings.Contains(socket(t, "show servers state pg-test-extra"), "pg-test-1"), "the new service is served")

	elsewhere, failed = measure("pgsvc's reload, service removed", func() { installInventory(t, "") })
	assert.Zero(t, elsewhere, "no new session through the primary port reaches a non-leader after pgsvc's reload")
	assert.Zero(t, failed, "no session fails across pgsvc's reload")
	converged(t)

	measure("external reload (master CLI), forced after it", func() {
		mustRun(t, "docker", "exec", haproxyContainer, "lab-haproxy-cli", "master", "reload")
	})
	converged(t)
	expectLive(t, primary, "")
	*proc = masterProc(t)
}
