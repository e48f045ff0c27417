package dataplaneapi

import (
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

// readBackPlan is what reading a batch's backends back sends (after the
// batch, on its connection), and how the replies parse: every backend
// for a bulk pass (all its effects are in `show servers state`), else the
// touched ones.
func readBackPlan(batch []sent, bulk bool) ([]string, func([]string) (map[string]BackendState, error)) {
	if bulk {
		return []string{serversStateLine}, parseServersState
	}
	var names []string
	seen := map[string]bool{}
	for _, b := range batch {
		if !seen[b.cmd.Backend] {
			seen[b.cmd.Backend] = true
			names = append(names, b.cmd.Backend)
		}
	}
	return backendLines(names), func(replies []string) (map[string]BackendState, error) { return parseBackends(names, replies) }
}

// judge returns the commands whose effect HAProxy's states show, and, per
// cluster, those whose effect they do not. When a server gets several
// commands of one kind in a batch (a slot started down, then forced up),
// the last one is what must show; the earlier ones count with it.
func judge(batch []sent, states map[string]BackendState) ([]sent, map[string]error) {
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
	return ok, failed
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
