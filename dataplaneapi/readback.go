package dataplaneapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// client-native's transport ends a reply at a read error or at its own
// deadline without saying so, and HAProxy answers a successful `set server`
// with nothing: an empty reply proves nothing. So a command counts as
// applied only once HAProxy's state, read back after the batch, shows its
// effect.

// sent is a command HAProxy accepted, with the cluster it is for.
type sent struct {
	cluster string
	cmd     Command
}

// readBack reads the touched backends again and returns the commands whose
// effect HAProxy shows, and, per cluster, those whose effect it does not.
// When a server gets several commands of one kind in a batch (a slot
// started down, then forced up), the last one is what must show; the
// earlier ones count with it.
func (s *Syncer) readBack(ctx context.Context, batch []sent, bulk bool) ([]sent, map[string]error, error) {
	states, err := s.readBackends(ctx, batch, bulk)
	if err != nil {
		return nil, nil, fmt.Errorf("read back after applying %d commands: %w", len(batch), err)
	}
	last := map[string]int{}
	for i, b := range batch {
		last[b.cmd.Backend+"/"+b.cmd.Server+"/"+b.cmd.Kind] = i
	}
	shown := make([]bool, len(batch))
	failed := map[string]error{}
	for i, b := range batch {
		if last[b.cmd.Backend+"/"+b.cmd.Server+"/"+b.cmd.Kind] != i {
			continue
		}
		got, ok := states[b.cmd.Backend].Slots[b.cmd.Server]
		if why := effectMissing(b.cmd, got, ok); why != "" {
			failed[b.cluster] = errors.Join(failed[b.cluster], fmt.Errorf("haproxy accepted %q but does not show it: %s", b.cmd.Line, why))
			continue
		}
		shown[i] = true
	}
	var ok []sent
	for _, b := range batch {
		if shown[last[b.cmd.Backend+"/"+b.cmd.Server+"/"+b.cmd.Kind]] {
			ok = append(ok, b)
		}
	}
	return ok, failed, nil
}

func (s *Syncer) readBackends(ctx context.Context, batch []sent, bulk bool) (map[string]BackendState, error) {
	if bulk {
		return s.Runtime.AllBackends(ctx)
	}
	out := map[string]BackendState{}
	for _, b := range batch {
		if _, done := out[b.cmd.Backend]; done {
			continue
		}
		st, err := s.Runtime.Backend(ctx, b.cmd.Backend)
		if err != nil {
			return nil, err
		}
		out[b.cmd.Backend] = st
	}
	return out, nil
}

// effectMissing says why HAProxy's state does not show a command's effect
// ("" when it does).
func effectMissing(c Command, got SlotState, ok bool) string {
	if !ok {
		return "no such server in its state"
	}
	var shows bool
	switch c.Kind {
	case "state":
		shows = got.Admin.String() == c.To
	case "weight":
		shows = strconv.Itoa(got.UWeight) == c.To
	case "addr":
		shows = fmt.Sprintf("%s:%d", got.Addr, got.Port) == c.To
	case "check-port":
		shows = strconv.Itoa(got.CheckPort) == c.To
	case "health":
		shows = got.Up() == (c.To == "up") || c.To == "down" && got.Admin == AdminMaint
	default: // shutdown sessions: nothing to read that a new session could not change
		shows = true
	}
	if shows {
		return ""
	}
	return fmt.Sprintf("admin %s, status %q, weight %d, address %s:%d, check port %d", got.Admin, got.Status, got.UWeight, got.Addr, got.Port, got.CheckPort)
}
