package reconcile

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pgsvc/pgsvc/selector"
)

// Defaults of InventorySource.
const (
	defaultInventoryInterval = time.Second
	defaultInventorySettle   = 500 * time.Millisecond
	// forcedRounds bounds how many settle intervals a forced load waits for
	// a file that keeps changing; polls warn after as many unsettled reads.
	forcedRounds = 10
)

// InventorySource re-reads the inventory file when its content changes, or
// when Reload is signalled (SIGHUP). Content is used only once it is stable
// (see Settle). A new version that fails any check a pass or a render would
// fail, or that would leave this HAProxy no cluster when the one in force
// has some, is rejected with a logged error and the last good model stays
// in force.
type InventorySource struct {
	Path     string
	Interval time.Duration // how often the file is checked (default 1s)
	// Settle is how long content must stay the same before it is used: it
	// is read twice, Settle apart, and used only when both reads are
	// identical (default 500ms). Rename-style writers (editors, Ansible's
	// copy, sed -i) are always seen whole; an in-place writer (cat >) must
	// not pause longer than this in the middle of the file.
	Settle time.Duration
	Log    *slog.Logger
	Reload <-chan struct{}
	// Result is called after every load attempt (metrics); may be nil.
	Result func(err error)
	// Validate, when set, runs on the static desired state of a new
	// inventory before it is installed (the daemon renders the config files
	// with it); an error rejects the inventory.
	Validate func(Desired) error
	// Pause waits between the two reads of the file; nil waits for d on a
	// timer. Tests set it to act as a writer while the source waits.
	Pause func(ctx context.Context, d time.Duration) error

	last      contentID // the content last acted on (installed, or rejected and reported)
	unsettled int       // consecutive polls that found the file changing
}

// contentID identifies what a read found: the content's hash, or the read
// error.
type contentID struct {
	sum [32]byte
	err string
}

// snapshot is one read of the file.
type snapshot struct {
	id   contentID
	data []byte
	err  error
}

func (s *InventorySource) read() snapshot {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return snapshot{id: contentID{err: err.Error()}, err: err}
	}
	return snapshot{id: contentID{sum: sha256.Sum256(data)}, data: data}
}

// Load reads the file once and installs it if it is stable, valid and new,
// bounded by the settle waits (see LoadContext).
func (s *InventorySource) Load(in *Inputs, force bool) error {
	return s.LoadContext(context.Background(), in, force)
}

// LoadContext is one poll of the file. Content that differs from what was
// last acted on is read again a settle interval later and used only if it
// is the same; a poll that finds it changing leaves it for the next poll.
// A forced load (SIGHUP, start) installs the content even if it is not new,
// and waits for it to settle for up to forcedRounds intervals.
func (s *InventorySource) LoadContext(ctx context.Context, in *Inputs, force bool) error {
	snap := s.read()
	if !force && snap.id == s.last {
		return snap.err // nothing new; a read failure was already reported
	}
	snap, stable, err := s.settle(ctx, snap, force)
	if err != nil {
		return fmt.Errorf("inventory %s: %w", s.Path, err)
	}
	if !stable && !force {
		if s.unsettled++; s.unsettled == forcedRounds {
			s.Log.Warn("inventory keeps changing; it is loaded once it reads the same twice in a row", "path", s.Path, "settle", s.settleInterval())
		}
		s.Log.Debug("inventory changed while being read; waiting for it to settle", "path", s.Path)
		return nil
	}
	s.unsettled = 0
	if !stable {
		// Acted on nothing: the next poll tries again, and reports.
		s.last = contentID{}
		err = fmt.Errorf("inventory %s still changing after %s: not loaded", s.Path, forcedRounds*s.settleInterval())
	} else if !force && snap.id == s.last {
		return snap.err // settled back to the content in force
	} else {
		s.last = snap.id // a bad version is reported once, not every interval
		err = s.install(in, snap, force)
	}
	s.report(err)
	return err
}

// settle reads the file again after the settle interval until two reads
// in a row are identical: once for a poll, up to forcedRounds times when
// forced. It returns the last read and whether it was stable.
func (s *InventorySource) settle(ctx context.Context, prev snapshot, force bool) (snapshot, bool, error) {
	rounds := 1
	if force {
		rounds = forcedRounds
	}
	pause := s.Pause
	if pause == nil {
		pause = wait
	}
	for i := 0; i < rounds; i++ {
		if err := pause(ctx, s.settleInterval()); err != nil {
			return snapshot{}, false, err
		}
		next := s.read()
		if next.id == prev.id {
			return next, true, nil
		}
		prev = next
	}
	return prev, false, nil
}

func (s *InventorySource) settleInterval() time.Duration {
	if s.Settle <= 0 {
		return defaultInventorySettle
	}
	return s.Settle
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// install parses and checks a stable read and installs it as a whole.
func (s *InventorySource) install(in *Inputs, snap snapshot, force bool) error {
	if snap.err != nil {
		return snap.err
	}
	inv, err := selector.ParseInventory(s.Path, snap.data)
	if err != nil {
		return err
	}
	m, err := selector.NewModel(inv)
	if err != nil {
		return err
	}
	if err := s.check(in, m); err != nil {
		return err
	}
	_, before := in.Model()
	if err := in.SetModel(m); err != nil {
		return err
	}
	_, after := in.Model()
	s.Log.Info("inventory loaded", "path", s.Path, "clusters", len(m.Clusters), "hosts", len(inv.Hosts), "forced", force)
	if gone := removed(before, after); len(gone) > 0 {
		s.Log.Warn("inventory load removes whole clusters from this HAProxy: their services and config files go",
			"path", s.Path, "clusters", gone, "before", len(before), "after", len(after))
	}
	return nil
}

// check fails a model that a pass or a render would fail on: its scope,
// its static desired state (selectors, and binds when the scope is one
// node's HAProxy) and the Validate hook.
func (s *InventorySource) check(in *Inputs, m *selector.Model) error {
	in.mu.Lock()
	node, names := in.node, in.names
	in.mu.Unlock()
	scope, err := m.Select(node, names)
	if err != nil {
		return err
	}
	if err := s.checkNotEmptied(in, m, node, scope); err != nil {
		return err
	}
	// Compute(scope, Live{}, node != "") in two steps, so that a bind
	// conflict names the file and the node (selector errors carry file:line).
	d, err := Compute(scope, Live{}, false)
	if err != nil {
		return err
	}
	if c := d.BindConflict(); node != "" && c != "" {
		return &selector.InputError{Msg: fmt.Sprintf("%s: %s on node %s", s.Path, c, node)}
	}
	if s.Validate != nil {
		if err := s.Validate(d); err != nil {
			return fmt.Errorf("%s: %w", s.Path, err)
		}
	}
	return nil
}

// checkNotEmptied refuses a model that leaves this HAProxy no cluster when
// the one in force has some: with nothing in scope no pass runs, so every
// service would stop following Patroni while /readyz says ok, and such a
// file is far more often truncated or moved than meant. A first load with
// no cluster stays allowed (nothing is lost).
func (s *InventorySource) checkNotEmptied(in *Inputs, m *selector.Model, node string, scope []*selector.Cluster) error {
	_, before := in.Model()
	if len(scope) > 0 || len(before) == 0 {
		return nil
	}
	names := make([]string, len(before))
	var moved []string
	for i, c := range before {
		names[i] = c.Name
		for _, now := range m.Clusters {
			if now.Name == c.Name && now.Provider != "" {
				moved = append(moved, fmt.Sprintf("%s to group %s", c.Name, now.Provider))
			}
		}
	}
	where := "this HAProxy"
	if node != "" {
		where += " (node " + node + ")"
	}
	why := ""
	if len(moved) > 0 {
		why = " (pg_service_provider moved " + strings.Join(moved, ", ") + ")"
	}
	return &selector.InputError{Msg: fmt.Sprintf("%s: no PostgreSQL cluster for %s, the last good inventory had %d (%s)%s: "+
		"refusing to remove every service; to decommission this HAProxy, stop pgsvc and remove its files",
		s.Path, where, len(before), strings.Join(names, ", "), why)}
}

// removed names the clusters of before that after no longer has.
func removed(before, after []*selector.Cluster) []string {
	kept := make(map[string]bool, len(after))
	for _, c := range after {
		kept[c.Name] = true
	}
	var gone []string
	for _, c := range before {
		if !kept[c.Name] {
			gone = append(gone, c.Name)
		}
	}
	return gone
}

func (s *InventorySource) report(err error) {
	if s.Result != nil {
		s.Result(err)
	}
	if err != nil {
		s.Log.Error("inventory rejected, the last good one stays in force", "path", s.Path, "err", err)
	}
}

// Run watches the file until ctx ends.
func (s *InventorySource) Run(ctx context.Context, in *Inputs) error {
	interval := s.Interval
	if interval <= 0 {
		interval = defaultInventoryInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.LoadContext(ctx, in, false) // logged and counted by Load; the last good model stays
		case <-s.Reload:
			_ = s.LoadContext(ctx, in, true)
		}
	}
}
