package dataplaneapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Syncer is the reconciler's HAProxy: runtime API first, config files
// always, a reload only when the runtime cannot express the change.
type Syncer struct {
	Runtime *Runtime
	Config  *ConfigDir // nil: runtime only (no files, no reloads)
	// ReloadWait bounds the wait for the new worker after a reload.
	ReloadWait time.Duration
	// ProcNet is where the kernel's socket tables are ("": /proc/net),
	// read for the clients a switchover hold kept waiting.
	ProcNet string

	// stuck is a reload that did not make HAProxy run the files, so it is
	// not repeated for them (zero: none).
	stuck stuckReload
	// layout holds the backup flag of every slot of one worker: HAProxy
	// cannot change it at runtime, so a worker's flags are read once (show
	// stat: ~8 MB for 32,000 servers, most of a full read's time) and its
	// later full passes read `show servers state` alone.
	layout slotLayout
	// forced holds, per cluster, the worker its primary services were last
	// forced for (the fact that identifies a worker: its pid and start
	// time): a new worker gets its forcing once per cluster.
	forced map[string]worker
	// held holds, per cluster, the worker its primary services' frontends
	// were set to hold on (see holdPass).
	held heldWorkers
	// KeepHeld leaves a held frontend (maxconn 0) of a cluster whose
	// switchover is under way as it is: set for one-shot passes (`pgsvc
	// reconcile`), whose release then would let writes reach a leader not
	// yet promoted. Outside a switchover a held frontend is a leftover (a
	// pgsvc killed mid-hold), released as before.
	KeepHeld bool
}

// stuckReload is keyed on the desired fingerprint and the one HAProxy ran
// after the reload, not on the files on disk: a failed reload puts the
// previous files back, and that alone must not be worth another reload.
type stuckReload struct{ desired, running string }

// slotLayout is one worker's backup flags, keyed backend/slot.
type slotLayout struct {
	w      worker
	backup map[string]bool
}

// worker identifies an HAProxy worker: a pid alone is reused by a
// restarted container (the worker is pid 8 every time).
type worker struct {
	pid     string
	started time.Time
	version string // HAProxy's, e.g. 3.0.11-1+deb13u5
}

// same reports whether two readings are one worker (the start time is
// derived from a whole-second uptime).
func (w worker) same(o worker) bool {
	d := w.started.Sub(o.started)
	return w.pid == o.pid && d < 2*time.Second && d > -2*time.Second
}

// Apply implements reconcile.HAProxy. A command HAProxy refuses fails its
// cluster only: the cluster's other commands are still sent, its files and
// structure wait with it, every other cluster converges, and the failures
// come back as reconcile.ClusterErrors; so do new files of a cluster that
// `haproxy -c` rejects for reasons naming them. A socket that cannot be
// reached or read fails the whole pass with a reconcile.UnreachableError.
func (s *Syncer) Apply(ctx context.Context, services []reconcile.Service, clusters map[string]bool, accel map[string]reconcile.Accel, dryRun bool) (reconcile.Report, error) {
	var rep reconcile.Report
	refused := reconcile.ClusterErrors{}
	var before worker
	var err error
	if !dryRun && s.Config != nil {
		// What an earlier pgsvc, killed between saving state and
		// reloading, may have left must not reach a later restart.
		if err := s.Config.prepareStateFile(); err != nil {
			return rep, err
		}
	}
	if !dryRun {
		if before, err = s.worker(ctx); err != nil {
			s.forced = nil // whatever answers next is a worker to force (and not hold) for
			s.held.reset()
			return rep, unreachable(err)
		}
	}
	pidBefore := before.pid
	passAccel := accel
	if !dryRun {
		// A worker this pass's clusters were not forced for yet (a reload
		// or restart, pgsvc's or anyone's) started every enabled slot UP
		// before its first check.
		passAccel = workerForcing(services, accel, func(c string) bool { f, ok := s.forced[c]; return ok && f.same(before) })
	}
	structural, err := s.runtimePass(ctx, services, passAccel, before, dryRun, &rep, refused)
	if err != nil {
		s.forced = nil
		s.held.reset()
		return rep, unreachable(err)
	}
	if dryRun {
		// The version decides whether frontends are touched at all.
		if before, err = s.worker(ctx); err != nil {
			return rep, unreachable(err)
		}
	}
	if err := s.holdPass(ctx, services, accel, before, dryRun, &rep, refused); err != nil {
		s.held.reset()
		return rep, unreachable(err)
	}
	if !dryRun {
		s.recordForced(services, before)
	}
	rep.RuntimeDone = time.Now()
	reasons := structural.except(refused)
	if s.Config == nil {
		if len(reasons) > 0 {
			return rep, fmt.Errorf("runtime cannot reach the desired state and no config dir is configured: %s", strings.Join(reasons, "; "))
		}
		return rep, clusterErrors(refused)
	}
	persisted, opts := s.persistPlan(ctx, services, clusters == nil, refused, dryRun, pidBefore)
	res, err := s.Config.persist(ctx, persisted, opts)
	rep.Written, rep.Removed, rep.Reload, rep.FileChanges = res.Written, res.Removed, res.Reload, res.Diff
	// A cluster whose new files `haproxy -c` refused fails alone, as one
	// whose command HAProxy refused: its files and structure wait with it.
	for c, cerr := range res.Rejected {
		addRefusal(refused, c, cerr)
	}
	reasons = structural.except(refused)
	if err != nil {
		return rep, err
	}
	if len(res.Reload) == 0 {
		var stuck error
		if reasons, stuck, err = s.runningReasons(ctx, services, accel, refused, reasons); err != nil {
			return rep, err
		}
		rep.Reload = reasons
		if stuck != nil {
			// Every pass, keyed ones too: readiness and the drift metric
			// stay true while HAProxy runs another structure.
			return rep, stuck
		}
		if len(reasons) > 0 {
			// The files already hold the structure but the running HAProxy
			// does not (a reload that failed or never happened, a hand
			// edit reloaded elsewhere): reload.
			if dryRun {
				return rep, clusterErrors(refused)
			}
			if r, why := s.Config.reloader(ctx); r == nil {
				return rep, fmt.Errorf("haproxy needs a reload (%s) and no reload is configured%s", strings.Join(reasons, "; "), why)
			}
			// Files written since HAProxy last loaded the dir (a hand-written
			// one declaring a proxy of pgsvc's) would fail the reload.
			if err := s.Config.check(ctx, nil, nil); err != nil {
				return rep, fmt.Errorf("haproxy needs a reload (%s), not sent: %w", strings.Join(reasons, "; "), err)
			}
			if err := s.Config.prepareStateFile(); err != nil {
				return rep, err
			}
			err := s.Config.reload(ctx, s.serversState, func(ctx context.Context) error { return s.confirmReload(ctx, pidBefore) })
			if err != nil {
				return rep, fmt.Errorf("reload haproxy for %s: %w", strings.Join(reasons, "; "), err)
			}
		}
	}
	if dryRun || len(rep.Reload) == 0 {
		return rep, clusterErrors(refused)
	}
	rep.Reloaded = true
	// The new worker started from the files, every enabled slot UP: verify,
	// force the non-leaders down in primary services, and re-apply what
	// only the runtime holds (forced health).
	now, err := s.worker(ctx)
	if err != nil {
		return rep, unreachable(fmt.Errorf("after reload: %w", err))
	}
	if _, err := s.runtimePass(ctx, services, workerForcing(services, accel, func(string) bool { return false }), now, false, &rep, refused); err != nil {
		return rep, unreachable(fmt.Errorf("after reload: %w", err))
	}
	if err := s.holdPass(ctx, services, accel, now, false, &rep, refused); err != nil {
		return rep, unreachable(fmt.Errorf("after reload: %w", err))
	}
	s.forced = nil // every cluster's services restarted, not only this pass's
	s.recordForced(services, now)
	return rep, clusterErrors(refused)
}

// serversState is the running servers' state as HAProxy reads a
// server-state-file: the `show servers state` reply, with the address of
// servers configured by DNS name left out ("-"): a new worker would take
// it over a fresh resolution of the name (init-addr last), keeping an old
// host's address after the name changed.
func (s *Syncer) serversState(ctx context.Context) (string, error) {
	replies, err := s.Runtime.Batch(ctx, []string{serversStateLine})
	if err != nil {
		return "", err
	}
	if _, err := ParseAllServersState(replies[0]); err != nil {
		return "", err
	}
	return stateWithoutNamedAddrs(replies[0]), nil
}

// stateWithoutNamedAddrs replaces srv_addr by "-" on the lines of servers
// with an srv_fqdn.
func stateWithoutNamedAddrs(dump string) string {
	lines := strings.SplitAfter(dump, "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 22 || strings.HasPrefix(f[0], "#") || f[17] == "-" {
			continue
		}
		f[4] = "-"
		lines[i] = strings.Join(f, " ") + "\n"
	}
	return strings.Join(lines, "")
}

// recordForced notes that the services' clusters were forced for w.
func (s *Syncer) recordForced(services []reconcile.Service, w worker) {
	if s.forced == nil {
		s.forced = map[string]worker{}
	}
	for i := range services {
		s.forced[services[i].Cluster] = w
	}
}

// worker reads which worker answers the stats socket.
func (s *Syncer) worker(ctx context.Context) (worker, error) {
	return readWorker(ctx, s.Runtime)
}

// readWorker reads the worker from `show info` over Batch, not Execute:
// client-native's transport ends a reply at a read error or its deadline
// and reports success, and a reply cut before Uptime_sec or Version would
// read as a new worker (forcing again) or as HAProxy < 3.0 (no holds).
func readWorker(ctx context.Context, rt *Runtime) (worker, error) {
	out, err := rt.Show(ctx, "show info")
	if err != nil {
		return worker{}, fmt.Errorf("read the worker: %w", err)
	}
	return parseWorker(out)
}

// parseWorker reads the worker from a `show info` reply. Pid, Uptime_sec
// and Version are all required: a reply without one is not a reading of
// the worker, whatever cut it.
func parseWorker(out string) (worker, error) {
	var w worker
	var uptime string
	for _, line := range strings.Split(out, "\n") {
		key, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch v = strings.TrimSpace(v); key {
		case "Pid":
			w.pid = v
		case "Uptime_sec":
			uptime = v
		case "Version":
			w.version = v
		}
	}
	var missing []string
	for _, f := range []struct{ name, value string }{{"Pid", w.pid}, {"Uptime_sec", uptime}, {"Version", w.version}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return worker{}, fmt.Errorf("show info: no %s in the reply (%d bytes): not a whole reading of the worker", strings.Join(missing, ", "), len(out))
	}
	secs, err := strconv.Atoi(uptime)
	if err != nil || secs < 0 {
		return worker{}, fmt.Errorf("show info: Uptime_sec %q is not a number of seconds", uptime)
	}
	w.started = time.Now().Add(-time.Duration(secs) * time.Second)
	return w, nil
}

// workerForcing adds, for every cluster whose leader is a positive fact
// and that is not done for this worker, every other member to the members
// forced down: a new worker shows them
// UP until its checks ran, and in a primary service that routes writes to
// replicas. Only slots HAProxy shows up get a command.
func workerForcing(services []reconcile.Service, accel map[string]reconcile.Accel, done func(cluster string) bool) map[string]reconcile.Accel {
	out := make(map[string]reconcile.Accel, len(accel))
	seen := map[string]bool{}
	for c, a := range accel {
		a.Down = append([]string(nil), a.Down...)
		for _, m := range a.Down {
			seen[c+"/"+m] = true
		}
		out[c] = a
	}
	for i := range services {
		svc := &services[i]
		a := out[svc.Cluster]
		if a.Leader == "" || done(svc.Cluster) {
			continue
		}
		for _, sv := range svc.Servers {
			if key := svc.Cluster + "/" + sv.Name; sv.Name != a.Leader && !seen[key] {
				seen[key] = true
				a.Down = append(a.Down, sv.Name)
			}
		}
		out[svc.Cluster] = a
	}
	return out
}

func unreachable(err error) error { return &reconcile.UnreachableError{Err: err} }

// persistPlan is what a pass hands to the config dir: the services whose
// files it writes (a cluster HAProxy refused keeps its files as they are),
// and how a reload is confirmed, judged or held.
func (s *Syncer) persistPlan(ctx context.Context, services []reconcile.Service, full bool, refused reconcile.ClusterErrors,
	dryRun bool, pidBefore string) ([]reconcile.Service, persistOptions) {
	persisted := services
	if len(refused) > 0 {
		persisted = nil
		for _, svc := range services {
			if refused[svc.Cluster] == nil {
				persisted = append(persisted, svc)
			}
		}
	}
	keep := map[string]bool{}
	for c := range refused {
		keep[c] = true
	}
	opts := persistOptions{full: full, dryRun: dryRun, keep: keep, state: s.serversState,
		confirm: func(ctx context.Context) error { return s.confirmReload(ctx, pidBefore) },
		running: func(ctx context.Context) (string, error) {
			_, got, _, err := s.fingerprintDrift(ctx)
			return got, err
		}}
	if s.stuck != (stuckReload{}) {
		// Held only while HAProxy runs what it ran after that reload: a
		// restart or a reload by anyone else is worth a new attempt.
		if _, got, _, err := s.fingerprintDrift(ctx); err == nil && got != s.stuck.running {
			s.stuck = stuckReload{}
		}
	}
	if stuck := s.stuck; stuck != (stuckReload{}) {
		// ...and only for the files that reload brought: new desired
		// files are worth one too.
		opts.held = func(desired string) string {
			if desired != stuck.desired {
				return ""
			}
			return "after the last reload HAProxy did not run the files in " + s.Config.Dir + " (does it load that directory, -f?)"
		}
	}
	return persisted, opts
}

// runningReasons adds to the runtime's structural reasons what the
// fingerprint says: whether HAProxy runs the files. When it does, the
// dumps' reasons are read again first: HAProxy runs files that declare
// every backend and slot a dump said it lacks, so that dump may be cut
// short at a line boundary (it parses cleanly). A fingerprint that a
// reload already failed to change is returned as stuck, the error to
// report instead of another reload.
func (s *Syncer) runningReasons(ctx context.Context, services []reconcile.Service, accel map[string]reconcile.Accel,
	refused reconcile.ClusterErrors, reasons []string) (_ []string, stuck, _ error) {
	want, got, drift, err := s.fingerprintDrift(ctx)
	if err != nil {
		return nil, nil, err
	}
	if drift == "" {
		s.stuck = stuckReload{}
		if len(reasons) > 0 {
			again, err := s.runtimePass(ctx, services, accel, worker{}, true, &reconcile.Report{}, reconcile.ClusterErrors{})
			if err != nil {
				return nil, nil, unreachable(err)
			}
			reasons = again.except(refused)
		}
		return reasons, nil, nil
	}
	reasons = append(reasons, drift)
	if s.stuck == (stuckReload{desired: want, running: got}) {
		return reasons, fmt.Errorf("haproxy still does not run the files in %s after a reload (%s): does it load that directory (-f %s)? Not reloading again until the desired files or what HAProxy runs change",
			s.Config.Dir, drift, s.Config.Dir), nil
	}
	return reasons, nil, nil
}

// confirmReload waits for the new worker and checks that it runs the files;
// a reload that left HAProxy on another config is remembered (as the two
// fingerprints), so it is reported instead of repeated.
func (s *Syncer) confirmReload(ctx context.Context, pidBefore string) error {
	if err := s.waitNewWorker(ctx, pidBefore); err != nil {
		return err
	}
	want, got, drift, err := s.fingerprintDrift(ctx)
	if err != nil {
		return err
	}
	if drift != "" {
		// want is what the reload brought: the files are still on disk.
		s.stuck = stuckReload{desired: want, running: got}
		return fmt.Errorf("after the reload HAProxy still does not run the files in %s (%s): does it load that directory (-f)?", s.Config.Dir, drift)
	}
	s.stuck = stuckReload{}
	return nil
}

// fingerprintDrift compares the fingerprint HAProxy loaded (got) with the
// one of the service files on disk (want): drift is "" when HAProxy runs
// what they say, else the reason it does not.
func (s *Syncer) fingerprintDrift(ctx context.Context) (want, got, drift string, err error) {
	want, env, err := s.Config.Fingerprint()
	if err != nil {
		return "", "", "", err
	}
	if got, err = s.Runtime.RunningFingerprint(ctx, env); err != nil {
		return "", "", "", unreachable(err)
	}
	switch got {
	case want:
		return want, got, "", nil
	case "":
		return want, got, fmt.Sprintf("haproxy has not loaded pgsvc's config fingerprint (%s unset): it runs files older than %s, or not those", env, s.Config.Dir), nil
	}
	return want, got, fmt.Sprintf("haproxy runs config fingerprint %s, the files in %s say %s (a reload that failed or never happened, or a restart from other files)", got, s.Config.Dir, want), nil
}

// clusterErrors is nil for no failures, so callers see a nil error.
func clusterErrors(e reconcile.ClusterErrors) error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// runtimePass plans and applies every service against what worker w (zero:
// unknown) shows; it returns the structural reasons of services the
// runtime cannot fix. What HAProxy refuses is added
// to refused under the service's cluster; an error return means HAProxy
// could not be reached or its reply could not be read.
func (s *Syncer) runtimePass(ctx context.Context, services []reconcile.Service, accel map[string]reconcile.Accel, w worker,
	dryRun bool, rep *reconcile.Report, refused reconcile.ClusterErrors) (structuralReasons, error) {
	var structural structuralReasons
	var batch []sent
	// What HAProxy accepted is reported even when the pass stops part-way
	// (unverified then: the read-back did not happen).
	defer func() { report(rep, batch) }()
	bulk := len(services) > bulkRead
	states, err := s.readServices(ctx, services, w, bulk)
	if err != nil {
		return nil, err
	}
	var planned []sent
	for i := range services {
		svc := &services[i]
		actual, ok := states[svc.Name]
		if !ok {
			structural = append(structural, structuralReason{svc.Cluster, "haproxy has no backend " + svc.Name})
			continue
		}
		cmds, err := PlanService(svc, actual, accel[svc.Cluster])
		var se *StructuralError
		if errors.As(err, &se) {
			structural = append(structural, structuralReason{svc.Cluster, se.Reason})
			continue
		}
		if err != nil {
			addRefusal(refused, svc.Cluster, err)
			continue
		}
		for _, c := range cmds {
			planned = append(planned, sent{cluster: svc.Cluster, cmd: c})
		}
	}
	if dryRun {
		batch = planned
		return structural, nil
	}
	if len(planned) == 0 {
		recordFenced(rep, services, accel, states, nil)
		return structural, nil
	}
	// One connection for the whole pass, in plan order, then the read-back
	// of what the commands touched. A command HAProxy refused is not
	// judged; the others count once the read-back shows them.
	cmds := make([]Command, len(planned))
	for i, p := range planned {
		cmds[i] = p.cmd
	}
	reads, parse := readBackPlan(planned, bulk)
	verdicts, replies, err := s.Runtime.ApplyAll(ctx, cmds, reads)
	var accepted []sent
	for i, verdict := range verdicts {
		if verdict != nil {
			addRefusal(refused, planned[i].cluster, verdict)
			continue
		}
		accepted = append(accepted, planned[i])
	}
	if err != nil {
		batch = accepted // unverified: reported as sent
		return nil, err
	}
	after, err := parse(replies)
	if err != nil {
		batch = accepted
		return nil, fmt.Errorf("read back after applying %d commands: %w", len(cmds), err)
	}
	shown, failed := judge(accepted, after)
	batch = shown
	for c, ferr := range failed {
		addRefusal(refused, c, ferr)
	}
	recordFenced(rep, services, accel, states, after)
	return structural, nil
}

// recordFenced reports, per cluster with a leader, whether HAProxy shows
// no server but the leader's up in any of its primary services (the slots
// read before the pass, as read back after it where the pass touched
// them): the old primary is out, a fact `pgsvc fence` waits for.
func recordFenced(rep *reconcile.Report, services []reconcile.Service, accel map[string]reconcile.Accel, before, after map[string]BackendState) {
	fenced := map[string]bool{}
	for i := range services {
		svc := &services[i]
		a := accel[svc.Cluster]
		if a.Leader == "" || !svc.ChecksPrimary() {
			continue
		}
		st, ok := before[svc.Name]
		if !ok {
			fenced[svc.Cluster] = false // not running yet: nothing is shown
			continue
		}
		if _, seen := fenced[svc.Cluster]; !seen {
			fenced[svc.Cluster] = true
		}
		for name, slot := range st.Slots {
			if b, ok := after[svc.Name].Slots[name]; ok {
				slot = b
			}
			if strings.TrimSuffix(name, BackupSuffix) != a.Leader && slot.Up() {
				fenced[svc.Cluster] = false
			}
		}
	}
	for c, ok := range fenced {
		if !ok {
			delete(rep.Fenced, c) // a second reading (after a reload) decides
			continue
		}
		if rep.Fenced == nil {
			rep.Fenced = map[string]reconcile.Fence{}
		}
		rep.Fenced[c] = reconcile.Fence{Leader: accel[c].Leader, Term: accel[c].LeaderTerm}
	}
}

// readServices reads the services' backends over one connection: only
// theirs for a small pass; for a large one every backend, with show stat
// only once per worker (see layout). Sessions are then unknown (show stat
// per backend costs HAProxy a scan of every proxy: 1,000 of them took 0.6
// s), and forcing shuts a demoted member's sessions in both its slots.
func (s *Syncer) readServices(ctx context.Context, services []reconcile.Service, w worker, bulk bool) (map[string]BackendState, error) {
	if !bulk {
		names := make([]string, len(services))
		for i := range services {
			names[i] = services[i].Name
		}
		return s.Runtime.Backends(ctx, names)
	}
	if w.pid == "" || !s.layout.w.same(w) {
		return s.readAll(ctx, w)
	}
	// The dump and the worker it came from, on one connection: a reload
	// between the pass's first reading and this one is a new worker, whose
	// backup flags are read whole.
	replies, err := s.Runtime.Batch(ctx, []string{"show info", serversStateLine})
	if err != nil {
		return nil, err
	}
	if now, err := parseWorker(replies[0]); err != nil || !now.same(w) {
		return s.readAll(ctx, worker{})
	}
	all, err := parseServersState(replies[1:])
	if err != nil {
		return nil, err
	}
	for be, st := range all {
		for name, slot := range st.Slots {
			backup, ok := s.layout.backup[be+"/"+name]
			if !ok { // a server added at runtime (`add server`)
				return s.readAll(ctx, w)
			}
			slot.Backup = backup
			st.Slots[name] = slot
		}
	}
	return all, nil
}

// readAll reads every backend whole and keeps w's backup flags.
func (s *Syncer) readAll(ctx context.Context, w worker) (map[string]BackendState, error) {
	all, err := s.Runtime.AllBackends(ctx)
	if err != nil {
		return nil, err
	}
	if w.pid != "" {
		l := slotLayout{w: w, backup: map[string]bool{}}
		for be, st := range all {
			for name, slot := range st.Slots {
				l.backup[be+"/"+name] = slot.Backup
			}
		}
		s.layout = l
	}
	return all, nil
}

func report(rep *reconcile.Report, batch []sent) {
	for _, b := range batch {
		c := b.cmd
		rep.Commands = append(rep.Commands, reconcile.AppliedCommand{Cluster: b.cluster, Service: c.Backend, Server: c.Server,
			Kind: c.Kind, Line: c.Line, From: c.From, To: c.To})
	}
}

// structuralReason is why a cluster's service needs a reload.
type structuralReason struct{ cluster, reason string }

type structuralReasons []structuralReason

// except drops the reasons of clusters HAProxy refused a command in: their
// files wait with them, so a reload would not bring their structure.
func (r structuralReasons) except(refused reconcile.ClusterErrors) []string {
	var out []string
	for _, sr := range r {
		if refused[sr.cluster] == nil {
			out = append(out, sr.reason)
		}
	}
	return out
}

func addRefusal(refused reconcile.ClusterErrors, cluster string, err error) {
	refused[cluster] = errors.Join(refused[cluster], err)
}

// bulkRead is the number of services above which a pass reads every
// backend at once instead of one backend at a time.
const bulkRead = 16

func (s *Syncer) workerPID(ctx context.Context) (string, error) {
	w, err := s.worker(ctx)
	return w.pid, err
}

// waitNewWorker waits until the stats socket answers from a new worker: for
// some tens of milliseconds after a reload the old worker still answers and
// commands sent to it are lost.
func (s *Syncer) waitNewWorker(ctx context.Context, before string) error {
	wait := s.ReloadWait
	if wait == 0 {
		wait = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		pid, err := s.workerPID(ctx)
		if err == nil && pid != before {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after reload the stats socket still answers from worker %s: %w", before, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WatchWorker polls HAProxy's worker pid and calls changed when it differs
// from the last one seen, or when HAProxy answers again after being
// unreachable: a restart, or any reload (pgsvc's own ones cost one extra,
// empty verification pass). The caller then verifies every service at once
// instead of at the next resync.
func (s *Syncer) WatchWorker(ctx context.Context, every time.Duration, changed func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, _ := s.workerPID(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A busy HAProxy (a full dump in flight) may take longer than a
		// tick to answer: a timeout is not a new worker.
		probeCtx, cancel := context.WithTimeout(ctx, max(every, 2*time.Second))
		pid, err := s.workerPID(probeCtx)
		cancel()
		if err != nil {
			last = ""
			continue
		}
		if pid != last {
			last = pid
			changed()
		}
	}
}
