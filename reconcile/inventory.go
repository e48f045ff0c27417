package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"

	"github.com/pgsvc/pgsvc/selector"
)

// InventorySource re-reads the inventory file when its content changes, or
// when Reload is signalled (SIGHUP). A new version that fails validation is
// rejected with a logged error and the last good model stays in force.
type InventorySource struct {
	Path     string
	Interval time.Duration // how often the file is checked (default 1s)
	Log      *slog.Logger
	Reload   <-chan struct{}
	// Result is called after every load attempt (metrics); may be nil.
	Result func(err error)

	sum     [32]byte
	readErr string // the last read failure, reported once until it changes
}

// Load reads the file once and installs it if it is valid and new.
func (s *InventorySource) Load(in *Inputs, force bool) error {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		if !force && err.Error() == s.readErr {
			return err // already reported; the last good model stays
		}
		s.readErr, s.sum = err.Error(), [32]byte{}
	} else {
		s.readErr = ""
		sum := sha256.Sum256(data)
		if !force && bytes.Equal(sum[:], s.sum[:]) {
			return nil
		}
		var inv *selector.Inventory
		if inv, err = selector.ParseInventory(s.Path, data); err == nil {
			var m *selector.Model
			if m, err = selector.NewModel(inv); err == nil {
				if err = in.SetModel(m); err == nil {
					s.sum = sum
					s.Log.Info("inventory loaded", "path", s.Path, "clusters", len(m.Clusters), "hosts", len(inv.Hosts), "forced", force)
				}
			}
		}
		if err != nil {
			s.sum = sum // report a bad version once, not every interval
		}
	}
	if s.Result != nil {
		s.Result(err)
	}
	if err != nil {
		s.Log.Error("inventory rejected, the last good one stays in force", "path", s.Path, "err", err)
	}
	return err
}

// Run watches the file until ctx ends.
func (s *InventorySource) Run(ctx context.Context, in *Inputs) error {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.Load(in, false) // logged and counted by Load; the last good model stays
		case <-s.Reload:
			_ = s.Load(in, true)
		}
	}
}
