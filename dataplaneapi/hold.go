package dataplaneapi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Holding new connections (reconcile.HoldConfig) is `set maxconn frontend
// <listen> 0`: HAProxy stops accepting, clients' handshakes complete in the
// kernel's backlog and they wait; raising it back accepts them all at once.
// Measured on 3.0.11. On 2.6.12 raising it with connections waiting aborts
// HAProxy (watchdog, resume_listener from the CLI), so below 3.0 pgsvc
// never sends a frontend maxconn at all.

// FrontendsLine reads every frontend's row (type 1) of `show stat`.
const FrontendsLine = "show stat -1 1 -1"

// Frontend is a proxy's frontend as `show stat` shows it.
type Frontend struct {
	Maxconn  int   // slim: the frontend's current maxconn (0: holding)
	Sessions int   // scur
	Total    int64 // stot: sessions accepted since the worker started
}

// ParseFrontends reads the FRONTEND rows of `show stat` CSV by proxy name.
func ParseFrontends(out string) (map[string]Frontend, error) {
	body := strings.TrimPrefix(strings.TrimSpace(out), "# ")
	header, rest, _ := strings.Cut(body, "\n")
	col := map[string]int{}
	for i, h := range strings.Split(header, ",") {
		col[h] = i
	}
	for _, need := range []string{"pxname", "svname", "scur", "slim", "stot"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("show stat: no %s column in %q", need, firstLine(out))
		}
	}
	last := max(col["pxname"], col["svname"], col["scur"], col["slim"], col["stot"])
	out2 := map[string]Frontend{}
	for _, line := range strings.Split(rest, "\n") {
		if line == "" {
			continue
		}
		row := strings.Split(line, ",")
		if len(row) <= last {
			return nil, fmt.Errorf("show stat: short line %q", firstLine(line))
		}
		if row[col["svname"]] != "FRONTEND" {
			continue
		}
		var f Frontend
		var err error
		if f.Maxconn, err = atoiEmpty(row[col["slim"]]); err == nil {
			if f.Sessions, err = atoiEmpty(row[col["scur"]]); err == nil {
				f.Total, err = strconv.ParseInt(orZero(row[col["stot"]]), 10, 64)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("show stat: frontend %s: %w", row[col["pxname"]], err)
		}
		out2[row[col["pxname"]]] = f
	}
	return out2, nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func atoiEmpty(s string) (int, error) { return strconv.Atoi(orZero(s)) }

// holdsOK reports whether this HAProxy can hold connections, and why not.
func holdsOK(w worker) (bool, string) {
	var major, minor int
	if _, err := fmt.Sscanf(w.version, "%d.%d", &major, &minor); err != nil {
		return false, fmt.Sprintf("HAProxy's version %q is unknown (show info)", w.version)
	}
	if major < 3 {
		return false, fmt.Sprintf("HAProxy %s is older than 3.0: raising a frontend's maxconn with clients waiting can abort it (2.6's watchdog), so new connections are not held during switchovers", w.version)
	}
	return true, ""
}

// holdPass makes the frontends of the services that admit only the primary
// hold (maxconn 0) where accel asks for a hold, and accept (the service's
// maxconn) everywhere else: a pgsvc that starts, or a hold that ended,
// releases whatever is held. A hold is kept only on the worker it was set
// on: a reload or restart starts a worker that accepts, and the hold is
// then reported lost, never set again. Commands count once the frontends
// read back show them.
func (s *Syncer) holdPass(ctx context.Context, services []reconcile.Service, accel map[string]reconcile.Accel, w worker,
	dryRun bool, rep *reconcile.Report, refused reconcile.ClusterErrors) error {
	var svcs []*reconcile.Service
	wantHold := false
	for i := range services {
		if svc := &services[i]; svc.ChecksPrimary() && svc.Maxconn > 0 {
			svcs = append(svcs, svc)
			wantHold = wantHold || accel[svc.Cluster].Hold || accel[svc.Cluster].Armed
		}
	}
	if len(svcs) == 0 {
		return nil
	}
	if ok, why := holdsOK(w); !ok {
		if wantHold {
			rep.HoldRefused = why
		}
		return nil
	}
	reads := frontendReads(svcs)
	replies, err := s.Runtime.Batch(ctx, reads)
	if err != nil {
		return err
	}
	before, err := parseFrontendReplies(replies)
	if err != nil {
		return err
	}
	type planned struct {
		cluster string
		cmd     Command
		want    int
	}
	var plan []planned
	for _, svc := range svcs {
		want := svc.Maxconn
		if accel[svc.Cluster].Hold {
			if hw, ok := s.held.get(svc.Cluster, accel[svc.Cluster].HoldRequest); ok && !hw.same(w) {
				if rep.HoldLost == nil {
					rep.HoldLost = map[string]string{}
				}
				rep.HoldLost[svc.Cluster] = "HAProxy's worker changed during the hold (a reload or restart): the new one accepts connections"
			} else {
				want = 0
			}
		}
		fe, ok := before[svc.Name]
		if !ok {
			continue // not running yet: structural, the reload brings it (and the pass after it holds or not)
		}
		if fe.Maxconn == want {
			continue
		}
		if s.KeepHeld && fe.Maxconn == 0 && accel[svc.Cluster].Switchover && !dryRun {
			rep.HeldLeft = append(rep.HeldLeft, svc.Name)
			continue
		}
		kind := "release"
		if want == 0 {
			kind = "hold"
		}
		plan = append(plan, planned{svc.Cluster, cmd(svc.Name, "", kind, strconv.Itoa(fe.Maxconn), strconv.Itoa(want),
			"set maxconn frontend %s %d", svc.Name, want), want})
	}
	var batch []sent
	defer func() { report(rep, batch) }()
	if dryRun {
		for _, p := range plan {
			batch = append(batch, sent{cluster: p.cluster, cmd: p.cmd})
		}
		return nil
	}
	if len(plan) == 0 {
		s.forgetHolds(svcs, accel, rep)
		return nil
	}
	cmds := make([]Command, len(plan))
	waiting := map[string]int{}
	for i, p := range plan {
		cmds[i] = p.cmd
		if p.want != 0 {
			if n, ok := listenBacklog(s.procNet(), servicePort(svcs, p.cmd.Backend)); ok {
				waiting[p.cluster] += n
			}
		}
	}
	verdicts, readReplies, err := s.Runtime.ApplyAll(ctx, cmds, reads)
	if err != nil {
		for i, v := range verdicts {
			if v == nil {
				batch = append(batch, sent{cluster: plan[i].cluster, cmd: plan[i].cmd}) // unverified
			}
		}
		return err
	}
	after, err := parseFrontendReplies(readReplies)
	if err != nil {
		return fmt.Errorf("read back after %d frontend commands: %w", len(cmds), err)
	}
	for i, p := range plan {
		if verdicts[i] != nil {
			addRefusal(refused, p.cluster, verdicts[i])
			continue
		}
		if got := after[p.cmd.Backend].Maxconn; got != p.want {
			addRefusal(refused, p.cluster, fmt.Errorf("%q was accepted but frontend %s shows maxconn %d", p.cmd.Line, p.cmd.Backend, got))
			continue
		}
		batch = append(batch, sent{cluster: p.cluster, cmd: p.cmd})
		if p.want == 0 {
			s.held.keep(p.cluster, accel[p.cluster].HoldRequest, w)
			continue
		}
		if n, ok := waiting[p.cluster]; ok {
			if rep.Released == nil {
				rep.Released = map[string]int64{}
			}
			rep.Released[p.cluster] = int64(n)
		}
	}
	s.forgetHolds(svcs, accel, rep)
	return nil
}

// forgetHolds drops the worker of every hold of the pass's clusters that
// is over. A release outside a pass (accel nil) forgets nothing: a pass in
// flight that holds again after a reload must see the hold's worker is
// gone (the hold is lost), not set a new worker's frontends to 0.
func (s *Syncer) forgetHolds(svcs []*reconcile.Service, accel map[string]reconcile.Accel, rep *reconcile.Report) {
	if accel == nil {
		return
	}
	for _, svc := range svcs {
		if c := svc.Cluster; !accel[c].Hold || rep.HoldLost[c] != "" {
			s.held.forget(c)
		}
	}
}

// heldWorkers is, per cluster, the worker its primary services' frontends
// were set to hold on. A release outside a pass (Release, at hold_max or
// shutdown) changes it while a pass may run, hence the lock.
type heldWorkers struct {
	mu sync.Mutex
	by map[string]heldOn
}

// heldOn is the worker one hold (its failover key revision) was set on.
type heldOn struct {
	request int64
	w       worker
}

// get returns the worker the cluster's hold for request was set on; a
// record of an earlier hold is none.
func (h *heldWorkers) get(cluster string, request int64) (worker, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	on, ok := h.by[cluster]
	return on.w, ok && on.request == request
}

// keep records the worker a cluster's hold was first set on.
func (h *heldWorkers) keep(cluster string, request int64, w worker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil {
		h.by = map[string]heldOn{}
	}
	if on, ok := h.by[cluster]; !ok || on.request != request {
		h.by[cluster] = heldOn{request, w}
	}
}

func (h *heldWorkers) forget(cluster string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.by, cluster)
}

// reset forgets every hold's worker: whatever answers next is not held.
func (h *heldWorkers) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.by = nil
}

// frontendReads reads the services' frontends: one `show stat <proxy> 1 -1`
// each for a small pass (a keyed pass must not read 4,000 frontends for
// one cluster), every frontend at once for a large one.
func frontendReads(svcs []*reconcile.Service) []string {
	if len(svcs) > bulkRead {
		return []string{FrontendsLine}
	}
	lines := make([]string, len(svcs))
	for i, svc := range svcs {
		lines[i] = "show stat " + svc.Name + " 1 -1"
	}
	return lines
}

func parseFrontendReplies(replies []string) (map[string]Frontend, error) {
	all := map[string]Frontend{}
	for _, r := range replies {
		if strings.HasSuffix(strings.TrimSpace(r), "No such proxy.") {
			continue // a service HAProxy does not run yet: structural, the reload brings it
		}
		fe, err := ParseFrontends(r)
		if err != nil {
			return nil, err
		}
		for k, v := range fe {
			all[k] = v
		}
	}
	return all, nil
}

func servicePort(svcs []*reconcile.Service, name string) int {
	for _, svc := range svcs {
		if svc.Name == name {
			return svc.Port
		}
	}
	return 0
}

func (s *Syncer) procNet() string {
	if s.ProcNet != "" {
		return s.ProcNet
	}
	return "/proc/net"
}

// listenBacklog counts the connections waiting in the kernel's accept
// queue of the listening sockets on port: the clients a hold kept waiting
// (HAProxy's counters cannot see them: it has not accepted them). ok is
// false when no listening socket on port is visible (pgsvc in another
// network namespace than HAProxy). For a LISTEN socket, /proc/net/tcp's
// rx_queue is the accept queue's length.
func listenBacklog(procNet string, port int) (int, bool) {
	if port == 0 {
		return 0, false
	}
	want := fmt.Sprintf(":%04X", port)
	n, found := 0, false
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(filepath.Join(procNet, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 5 || fields[3] != "0A" || !strings.HasSuffix(fields[1], want) {
				continue
			}
			_, rx, ok := strings.Cut(fields[4], ":")
			q, err := strconv.ParseInt(rx, 16, 64)
			if !ok || err != nil {
				continue
			}
			n, found = n+int(q), true
		}
	}
	return n, found
}

// Release implements reconcile.Releaser: the services' frontends accept
// again (their configured maxconn), read back, outside a pass. A frontend
// HAProxy does not run is skipped; one already at its maxconn is not touched.
func (s *Syncer) Release(ctx context.Context, services []reconcile.Service) (reconcile.Report, error) {
	var rep reconcile.Report
	w, err := s.worker(ctx)
	if err != nil {
		return rep, unreachable(err)
	}
	refused := reconcile.ClusterErrors{}
	if err := s.holdPass(ctx, services, nil, w, false, &rep, refused); err != nil {
		return rep, unreachable(err)
	}
	return rep, clusterErrors(refused)
}
