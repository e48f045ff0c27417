package dataplaneapi

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pgsvc/pgsvc/reconcile"
)

// Command is one runtime API command with what it is for.
type Command struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`
	Kind    string `json:"kind"` // state, weight, addr, check-port, health, shutdown
	Line    string `json:"command"`
	From    string `json:"from,omitempty"` // what HAProxy had
	To      string `json:"to,omitempty"`   // what it gets
}

func (c Command) String() string { return c.Line }

func cmd(backend, server, kind, from, to, format string, args ...any) Command {
	return Command{Backend: backend, Server: server, Kind: kind, From: from, To: to,
		Line: fmt.Sprintf(format, args...)}
}

// StructuralError says HAProxy's servers cannot reach the desired state at
// runtime (a backend or slot is missing, a backup flag differs): the config
// must be rewritten and reloaded.
type StructuralError struct{ Reason string }

func (e *StructuralError) Error() string { return "needs reload: " + e.Reason }

// PlanService returns the runtime commands that make HAProxy's backend equal
// to the desired service. The order keeps sessions where they belong:
// addresses and weights, slots turned on (capacity is added first), slots
// drained (no new session lands on a server that leaves), forced health
// downs, the forced up (never two servers forced up at once: the old
// primary is down first), and sessions shut last, once nothing new can
// reach their server.
func PlanService(s *reconcile.Service, actual BackendState, accel reconcile.Accel) ([]Command, error) {
	var fix, on, off []Command
	for _, sv := range s.Servers {
		want := EnabledSlot(sv)
		for _, kind := range []SlotKind{ActiveSlot, BackupSlot} {
			name := SlotName(sv.Name, kind == BackupSlot)
			got, ok := actual.Slots[name]
			if !ok {
				return nil, &StructuralError{Reason: fmt.Sprintf("%s has no server %s", s.Name, name)}
			}
			if got.Backup != (kind == BackupSlot) {
				return nil, &StructuralError{Reason: fmt.Sprintf("%s/%s backup flag differs from the desired slot layout", s.Name, name)}
			}
			if got.Checked != (sv.CheckPort > 0) {
				// HAProxy cannot add or remove a server's checks at runtime
				// (it refuses check-port without them).
				return nil, &StructuralError{Reason: fmt.Sprintf("%s/%s health checks are %s in HAProxy, %s in the desired state",
					s.Name, name, onOff(got.Checked), onOff(sv.CheckPort > 0))}
			}
			fixes, err := fixSlot(s.Name, name, sv, got)
			if err != nil {
				return nil, err
			}
			fix = append(fix, fixes...)
			sibling := actual.Slots[SlotName(sv.Name, kind != BackupSlot)]
			switch {
			case kind == want && got.Admin != AdminReady:
				on = append(on, cmd(s.Name, name, "state", got.Admin.String(), "ready", "set server %s/%s state ready", s.Name, name))
				if got.Admin == AdminMaint && sv.CheckPort > 0 && (sibling.Admin == AdminMaint || !sibling.Up()) {
					// Leaving MAINT, 2.6 starts the slot UP before any check.
					// Unless its twin (same host, same check) is up, nothing
					// vouches for the host: start DOWN, let the checks admit it.
					// A server without checks is never forced down: nothing
					// would ever bring it back.
					on = append(on, cmd(s.Name, name, "health", "unknown", "down", "set server %s/%s health down", s.Name, name))
				}
			case kind != want && got.Admin == AdminReady:
				off = append(off, cmd(s.Name, name, "state", "ready", "drain", "set server %s/%s state drain", s.Name, name))
			}
			if kind == want && !got.Checked && got.Op == OpStopped {
				// No checks will ever bring it up (a health forced down, or
				// restored from a server-state file taken while checked).
				on = append(on, cmd(s.Name, name, "health", got.Status, "up", "set server %s/%s health up", s.Name, name))
			}
		}
	}
	var downs, up, shutdowns []Command
	if s.ChecksPrimary() {
		downs, up, shutdowns = accelerate(s, actual, accel)
	}
	out := append(fix, on...)
	out = append(out, off...)
	out = append(out, downs...)
	out = append(out, up...)
	return append(out, shutdowns...), nil
}

func fixSlot(backend, name string, sv reconcile.Server, got SlotState) ([]Command, error) {
	var out []Command
	switch {
	case !isIP(sv.Host):
		// A DNS name: HAProxy resolves it when it loads the file and
		// refuses it in `set server addr`. The name is the file's to
		// change (a reload); a new port still moves live.
		if !sameHostName(got.FQDN, sv.Host) {
			return nil, &StructuralError{Reason: fmt.Sprintf("%s/%s address %s is a DNS name (HAProxy resolves names when it loads the config; it has %s)",
				backend, name, sv.Host, slotAddr(got))}
		}
		if got.Port != sv.Port {
			out = append(out, cmd(backend, name, "addr", fmt.Sprintf("%s:%d", got.Addr, got.Port), fmt.Sprintf("%s:%d", got.Addr, sv.Port),
				"set server %s/%s addr %s port %d", backend, name, got.Addr, sv.Port))
		}
	case got.Addr != sv.Host || got.Port != sv.Port:
		out = append(out, cmd(backend, name, "addr", fmt.Sprintf("%s:%d", got.Addr, got.Port), fmt.Sprintf("%s:%d", sv.Host, sv.Port),
			"set server %s/%s addr %s port %d", backend, name, sv.Host, sv.Port))
	}
	if sv.CheckPort > 0 && got.CheckPort != sv.CheckPort {
		out = append(out, cmd(backend, name, "check-port", strconv.Itoa(got.CheckPort), strconv.Itoa(sv.CheckPort),
			"set server %s/%s check-port %d", backend, name, sv.CheckPort))
	}
	if got.UWeight != sv.Weight {
		out = append(out, cmd(backend, name, "weight", strconv.Itoa(got.UWeight), strconv.Itoa(sv.Weight),
			"set server %s/%s weight %d", backend, name, sv.Weight))
	}
	return out, nil
}

// isIP reports whether a host is an IP address (an IPv6 zone included).
func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// sameHostName compares DNS names as DNS does: case-insensitive, with or
// without the root's trailing dot.
func sameHostName(a, b string) bool {
	return a != "" && strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func slotAddr(s SlotState) string {
	if s.FQDN != "" {
		return fmt.Sprintf("%s (%s):%d", s.FQDN, s.Addr, s.Port)
	}
	return fmt.Sprintf("%s:%d", s.Addr, s.Port)
}

// accelerate forces the given members' slots down where HAProxy shows them
// up, and shuts their sessions where they have any; then it forces the new
// primary's enabled slot up unless HAProxy already shows it up, so writes
// move without waiting for rise x fastinter. Only one server is ever
// forced up. What HAProxy shows decides: a slot its checks already took
// down gets no command.
func accelerate(s *reconcile.Service, actual BackendState, accel reconcile.Accel) (downs, up, shutdowns []Command) {
	for _, name := range accel.Down {
		if _, ok := s.Server(name); !ok {
			continue
		}
		for _, backup := range []bool{false, true} {
			slot := SlotName(name, backup)
			got := actual.Slots[slot]
			if !got.Checked {
				// No checks: HAProxy keeps it in rotation whatever its
				// role, and nothing would ever bring it back up.
				continue
			}
			if got.Admin != AdminMaint && got.Up() {
				downs = append(downs, cmd(s.Name, slot, "health", got.Status, "down", "set server %s/%s health down", s.Name, slot))
			}
			if got.Sessions != 0 || got.Admin != AdminMaint && got.Up() {
				// A demoted primary's sessions must not keep writing to a
				// replica, whether its slot stays enabled or drains. Not
				// read (-1): shut, which is harmless where there are none.
				shutdowns = append(shutdowns, cmd(s.Name, slot, "shutdown", "sessions", "none", "shutdown sessions server %s/%s", s.Name, slot))
			}
		}
	}
	if accel.Up == "" {
		return downs, nil, shutdowns
	}
	sv, ok := s.Server(accel.Up)
	if !ok || sv.Slot == reconcile.Out || sv.CheckPort == 0 {
		return downs, nil, shutdowns // not in the service, or no checks to override
	}
	slot := SlotName(accel.Up, sv.Slot == reconcile.Backup)
	if got := actual.Slots[slot]; got.Admin != AdminReady || !got.HealthUp() {
		up = append(up, cmd(s.Name, slot, "health", actual.Slots[slot].Status, "up", "set server %s/%s health up", s.Name, slot))
	}
	return downs, up, shutdowns
}
