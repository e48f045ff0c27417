//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// etcdAddr is etcd's address on the lab network (docker-compose.yml).
const etcdAddr = "10.10.10.2"

// The primary loses etcd and nothing else (a blackhole route to etcd inside
// its container: a firewall change, an expired client certificate). Patroni
// cannot renew its lease, so its leader key and its member key expire
// together; with failsafe_mode it keeps PostgreSQL primary because it still
// reaches every member over the REST API, and its /primary answers 200. Its
// replicas keep talking to etcd and follow it (failsafe pings), so nobody
// takes the leader key. pgsvc must leave HAProxy as it is: a session opened
// through :5433 before the cut still works, new writes through :5433 keep
// working, the primary's slots stay UP, and pgsvc's log has no `health
// down` or `shutdown sessions` for it. Once the route is gone Patroni writes
// its keys again (a new lease) and the lab converges without a reload.
//
// Pins the absent-key demotion (issue 9, item 1): pgsvc read the two keys
// vanishing in one revision as a demotion, forced the live primary down and
// shut its sessions: the pre-cut session died and writes failed until the
// health checks brought the slot back.
func testPrimaryCutOff(t *testing.T) {
	c := startCutOff(t)
	gone := c.waitExpired()
	eventually(t, 30*time.Second, fmt.Sprintf("pgsvc to pass over etcd revision %d (keys gone)", gone.Revision),
		func() bool { return pgsvcRevision(t) >= gone.Revision })
	eventually(t, 30*time.Second, c.primary+" to run on as primary in failsafe mode", func() bool {
		st := patroniStatus(t, c.primary)
		return primaryRole(st.Role) == "primary" && st.State == "running" && st.Failsafe
	})
	assert.Equal(t, "200", mustRun(t, "docker", "exec", haproxyContainer, "curl", "-s", "-m", "3", "-o", "/dev/null",
		"-w", "%{http_code}", "http://"+nodes[c.primary]+":8008/primary"), "%s's /primary, as HAProxy checks it", c.primary)
	mark := time.Now()
	eventually(t, 30*time.Second, "a write through :5433 after pgsvc saw the keys expire", func() bool { return c.probe.succeededAfter(mark) })
	for _, n := range members {
		if n != c.primary {
			assert.Equal(t, "replica", memberRole(t, n), "%s keeps its member key and role", n)
		}
	}
	assert.Equal(t, "", leader(t), "no member took the leader key")
	c.untouched("while it was cut off from etcd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.sess.Exec(ctx, "INSERT INTO pgsvc_probe(at) VALUES (now())")
	assert.NoError(t, err, "the session opened through :5433 before the cut still writes")
	c.logPatroni()

	c.repair()
	healthy(t)
	converged(t)
	expectLive(t, c.primary, "")
	c.stopProbe()
	c.untouched("across the cut and its repair")
	hw, hf := c.probe.window(c.cut) // attempts cut short by stopProbe are not recorded
	windows = append(windows, fmt.Sprintf("%-52s %6d ms  (%d failed attempts)", "primary cut off from etcd, through :5433", hw.Milliseconds(), hf))
	t.Logf("pgsvc since the cut:\n%s", pgsvcApplied(t, c.cut))
}

// cutOff is one run of the scenario: the primary, a session and a write
// probe through :5433 opened before the cut, and what HAProxy and etcd
// showed then.
type cutOff struct {
	t         *testing.T
	primary   string
	sess      *pgx.Conn
	probe     *writeProbe
	stopProbe context.CancelFunc
	before    etcdView
	ttl       time.Duration
	downs     map[string]int // chkdown of the primary's slot, by service
	cut       time.Time
	healed    bool
	logged    bool // Patroni's logs are in the test log
}

// The services that check /primary: the primary's slot must stay UP there.
var primaryServices = []string{"primary", "default"}

// startCutOff opens the session and the probe, then cuts the primary off
// from etcd. When the test ends, however it ends, the route is removed
// (later steps wait for a healthy cluster) and the probe stopped.
func startCutOff(t *testing.T) *cutOff {
	c := &cutOff{t: t, primary: healthy(t), downs: map[string]int{}, stopProbe: func() {}}
	t.Cleanup(c.close)
	converged(t)
	var err error
	c.sess, err = pgx.Connect(context.Background(), viaHAProxy)
	require.NoError(t, err)
	require.Equal(t, c.primary+" primary", sessionRoute(t, c.sess), "the session through :5433 reaches the primary")
	var probeCtx context.Context
	probeCtx, c.stopProbe = context.WithCancel(context.Background())
	c.probe = newProbe(viaHAProxy)
	go c.probe.run(probeCtx)
	began := time.Now()
	eventually(t, 20*time.Second, "a baseline of successful writes through :5433", func() bool { return c.probe.succeededAfter(began) })

	c.before = etcdRead(t)
	require.Equal(t, c.primary, c.before.value("leader"))
	require.Equal(t, c.before.kvs["leader"].Lease, c.before.kvs["members/"+c.primary].Lease, "Patroni keeps the leader and member keys on one lease")
	c.ttl = c.before.ttl(t)
	for _, svc := range primaryServices {
		c.downs[svc] = statCount(t, svc, c.primary, "chkdown")
	}
	c.cut = time.Now()
	mustRun(t, "docker", "exec", c.primary, "ip", "route", "add", "blackhole", etcdAddr+"/32")
	return c
}

// waitExpired waits until the primary's leader and member keys are gone:
// in the revision that expires their lease, never one without the other
// (an explicit delete would be a demotion). A replica taking the leader
// key instead fails the test: the scenario is the failsafe primary.
func (c *cutOff) waitExpired() etcdView {
	t := c.t
	var gone etcdView
	eventually(t, c.ttl+30*time.Second, fmt.Sprintf("%s's leader and member keys to expire (ttl %s)", c.primary, c.ttl), func() bool {
		gone = etcdRead(t)
		if l := gone.value("leader"); l != "" && l != c.primary {
			t.Fatalf("Patroni promoted %s while %s, primary in failsafe mode, was cut off from etcd: "+
				"the scenario needs the replicas to follow the failsafe primary", l, c.primary)
		}
		_, leaderKey := gone.kvs["leader"]
		_, memberKey := gone.kvs["members/"+c.primary]
		require.Equal(t, leaderKey, memberKey, "the leader key and %s's member key expire together (revision %d)", c.primary, gone.Revision)
		return !leaderKey
	})
	t.Logf("%s cut off from etcd: its leader and member keys were gone %s later (etcd revision %d)",
		c.primary, time.Since(c.cut).Round(100*time.Millisecond), gone.Revision)
	return gone
}

// untouched asserts that HAProxy and pgsvc left the primary alone since
// the cut: its slots UP and never DOWN, no forcing in pgsvc's log, the
// session opened before the cut usable, no failed write.
func (c *cutOff) untouched(when string) {
	t := c.t
	for _, svc := range primaryServices {
		assert.Equal(t, c.primary, serving(t, svc), "pg-test-%s: the primary's slot stays UP and takes traffic %s", svc, when)
		assert.Equal(t, c.downs[svc], statCount(t, svc, c.primary, "chkdown"), "pg-test-%s/%s never went DOWN %s (show stat chkdown)", svc, c.primary, when)
	}
	assert.Empty(t, forcedDown(t, c.cut, c.primary), "pgsvc forced no slot of %s down %s", c.primary, when)
	assert.Equal(t, c.primary+" primary", sessionRoute(t, c.sess), "the session opened through :5433 before the cut still works %s", when)
	w, failures := c.probe.window(c.cut)
	assert.Zero(t, failures, "writes through :5433 kept working %s (longest outage %s, last error %s)", when, w, c.probe.lastError())
}

// repair removes the route and waits until Patroni holds the leader key
// again, on a new lease that carries its member key too.
func (c *cutOff) repair() {
	t := c.t
	healAt := time.Now()
	c.heal()
	var back etcdView
	eventually(t, c.ttl+30*time.Second, c.primary+" to write its leader and member keys again", func() bool {
		back = etcdRead(t)
		return back.value("leader") == c.primary && memberRole(t, c.primary) == "primary"
	})
	t.Logf("route removed: %s held the leader key again %s later (lease %x, created at revision %d; before the cut lease %x)",
		c.primary, time.Since(healAt).Round(100*time.Millisecond), back.kvs["leader"].Lease, back.kvs["leader"].CreateRevision,
		c.before.kvs["leader"].Lease)
	assert.Equal(t, back.kvs["leader"].Lease, back.kvs["members/"+c.primary].Lease, "the new lease carries both keys again")
}

func (c *cutOff) heal() {
	if !c.healed && !c.cut.IsZero() {
		c.healed = true
		mustRun(c.t, "docker", "exec", c.primary, "ip", "route", "del", "blackhole", etcdAddr+"/32")
	}
}

// logPatroni puts what each node's Patroni did since the cut in the test log.
func (c *cutOff) logPatroni() {
	c.logged = true
	for _, n := range members {
		c.t.Logf("Patroni on %s since %s was cut off from etcd:\n%s", n, c.primary, patroniSays(c.t, n, c.cut))
	}
}

func (c *cutOff) close() {
	if c.t.Failed() && !c.logged {
		c.logPatroni()
	}
	c.heal()
	c.stopProbe()
	if c.sess != nil {
		c.sess.Close(context.Background())
	}
}

// sessionRoute is "<node> primary|replica" for a query on an open session.
func sessionRoute(t testing.TB, conn *pgx.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var node string
	var recovery bool
	if err := conn.QueryRow(ctx, "SELECT trim(pg_read_file('/etc/hostname'), E'\\n '), pg_is_in_recovery()").Scan(&node, &recovery); err != nil {
		return "query failed: " + err.Error()
	}
	if recovery {
		return node + " replica"
	}
	return node + " primary"
}

// etcdView is the cluster's keys in etcd at one revision, by name under
// /pg/pg-test/.
type etcdView struct {
	Revision int64
	kvs      map[string]etcdKV
}

type etcdKV struct {
	Value          string
	CreateRevision int64
	Lease          int64
}

func (v etcdView) value(key string) string { return v.kvs[key].Value }

// ttl is Patroni's ttl from the cluster's config key.
func (v etcdView) ttl(t testing.TB) time.Duration {
	t.Helper()
	var config struct {
		TTL int `json:"ttl"`
	}
	require.NoError(t, json.Unmarshal([]byte(v.value("config")), &config), "config key: %s", v.value("config"))
	require.NotZero(t, config.TTL, "ttl in the config key: %s", v.value("config"))
	return time.Duration(config.TTL) * time.Second
}

// etcdRead reads the cluster's prefix with etcdctl inside the etcd container.
func etcdRead(t testing.TB) etcdView {
	t.Helper()
	const prefix = "/pg/pg-test/"
	out := mustRun(t, "docker", "exec", etcdContainer, "etcdctl", "--endpoints=http://127.0.0.1:2379",
		"get", prefix, "--prefix", "-w", "json")
	var resp struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
		Kvs []struct {
			Key            []byte `json:"key"` // etcdctl writes base64, as []byte decodes
			Value          []byte `json:"value"`
			CreateRevision int64  `json:"create_revision"`
			Lease          int64  `json:"lease"`
		} `json:"kvs"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &resp), "etcdctl get -w json: %s", out)
	v := etcdView{Revision: resp.Header.Revision, kvs: map[string]etcdKV{}}
	for _, kv := range resp.Kvs {
		v.kvs[strings.TrimPrefix(string(kv.Key), prefix)] = etcdKV{Value: string(kv.Value), CreateRevision: kv.CreateRevision, Lease: kv.Lease}
	}
	return v
}

// pgsvcRevision is pgsvc_etcd_revision: the last etcd revision the daemon
// included in a successful pass.
func pgsvcRevision(t testing.TB) int64 {
	t.Helper()
	out := mustRun(t, "docker", "exec", haproxyContainer, "curl", "-fsS", "-m", "3", "http://127.0.0.1:9180/metrics")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "pgsvc_etcd_revision" {
			r, err := strconv.ParseFloat(f[1], 64)
			require.NoError(t, err, line)
			return int64(r)
		}
	}
	t.Fatalf("no pgsvc_etcd_revision in pgsvc's metrics:\n%s", out)
	return 0
}

type patroniState struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Failsafe bool   `json:"failsafe_mode_is_active"`
}

// patroniStatus is a node's GET /patroni, asked from the HAProxy container
// (where HAProxy's checks come from).
func patroniStatus(t testing.TB, node string) patroniState {
	t.Helper()
	out, code := run(t, "docker", "exec", haproxyContainer, "curl", "-fsS", "-m", "3", "http://"+nodes[node]+":8008/patroni")
	var st patroniState
	if code == 0 {
		require.NoError(t, json.Unmarshal([]byte(out), &st), "GET /patroni on %s: %s", node, out)
	}
	return st
}

// forcedDown lists pgsvc's log lines since since that force one of member's
// slots down or shut its sessions (any service; not member.b and the like).
func forcedDown(t testing.TB, since time.Time, member string) []string {
	t.Helper()
	m := regexp.QuoteMeta(member)
	re := regexp.MustCompile(`(set server \S+/` + m + ` health down|shutdown sessions server \S+/` + m + `)(["\s]|$)`)
	var hits []string
	for _, line := range logLines(t, haproxyContainer, since) {
		if re.MatchString(line) {
			hits = append(hits, line)
		}
	}
	return hits
}

// pgsvcApplied is pgsvc's "applied" log lines since since, one a line.
func pgsvcApplied(t testing.TB, since time.Time) string {
	t.Helper()
	var out []string
	for _, line := range logLines(t, haproxyContainer, since) {
		if strings.Contains(line, "msg=applied") || strings.Contains(line, `"msg":"applied"`) {
			out = append(out, "  "+line)
		}
	}
	if len(out) == 0 {
		return "  (no runtime command applied)"
	}
	return strings.Join(out, "\n")
}

func logLines(t testing.TB, container string, since time.Time) []string {
	t.Helper()
	out := mustRun(t, "docker", "logs", "--since", fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()), container)
	return strings.Split(strings.TrimSpace(out), "\n")
}

var (
	patroniLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ([A-Z]+: .*)$`)
	// object addresses and timeouts that make one message look like many
	patroniNoise = regexp.MustCompile(`0x[0-9a-f]+|\d+\.\d+`)
)

// patroniSays is what a node's Patroni logged since since: each distinct
// message once (addresses and numbers with decimals blanked), with how often
// it came, in order of first appearance.
func patroniSays(t testing.TB, node string, since time.Time) string {
	t.Helper()
	count := map[string]int{}
	var order []string
	for _, line := range logLines(t, node, since) {
		m := patroniLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		msg := patroniNoise.ReplaceAllString(m[1], "…")
		if count[msg] == 0 {
			order = append(order, msg)
		}
		count[msg]++
	}
	var b strings.Builder
	for i, msg := range order {
		if i == 25 {
			fmt.Fprintf(&b, "  ... %d more distinct messages\n", len(order)-i)
			break
		}
		fmt.Fprintf(&b, "  %3dx %s\n", count[msg], msg)
	}
	return b.String()
}
