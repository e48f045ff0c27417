package dataplaneapi

import (
	"encoding/csv"
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// Admin state bits of `show servers state` (HAProxy's SRV_ADMF_*).
const (
	admForcedMaint   = 0x01
	admInheritMaint  = 0x02
	admForcedDrain   = 0x08
	admInheritDrain  = 0x10
	admResolverMaint = 0x20
	admHostMaint     = 0x40
)

// chkConfigured is the check state bit (show servers state srv_check_state,
// HAProxy's CHK_ST_CONFIGURED) of a server with health checks configured.
const chkConfigured = 0x02

// AdminState is what an operator (or pgsvc) set on a server.
type AdminState int

// Admin states: ready takes traffic per health, drain finishes sessions but
// takes no new ones, maint takes nothing.
const (
	AdminReady AdminState = iota
	AdminDrain
	AdminMaint
)

func (a AdminState) String() string {
	return [...]string{"ready", "drain", "maint"}[a]
}

// SlotState is one HAProxy server (a slot) as HAProxy reports it.
type SlotState struct {
	Name      string
	Addr      string
	Port      int
	CheckPort int
	Admin     AdminState
	UWeight   int // the configured/user weight (show servers state srv_uweight)
	// FQDN is the host name the server was configured with, "" for an IP
	// address: HAProxy resolved it at load and Addr is what it found.
	FQDN string
	// Checked: HAProxy health-checks the server (it was loaded with `check`).
	Checked  bool
	Status   string // show stat status: UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/3", ...
	Backup   bool   // show stat bck
	Sessions int    // show stat scur: sessions open on the server now
}

// Up reports whether HAProxy currently considers the server's health up
// (whatever its admin state). A server without checks ("no check") is
// always up for HAProxy.
func (s SlotState) Up() bool {
	return strings.HasPrefix(s.Status, "UP") || s.Status == "DRAIN" || s.Status == "NOLB" || s.Status == "no check"
}

// BackendState is a backend's slots by name.
type BackendState struct {
	Name  string
	Slots map[string]SlotState
}

// ParseServersState parses `show servers state <backend>` output (format 1).
func ParseServersState(out string) (map[string]SlotState, error) {
	all, err := ParseAllServersState(out)
	if err != nil {
		return nil, err
	}
	slots := map[string]SlotState{}
	for _, b := range all {
		for k, v := range b {
			slots[k] = v
		}
	}
	return slots, nil
}

// ParseAllServersState parses `show servers state` for every backend:
// backend name -> server name -> slot.
func ParseAllServersState(out string) (map[string]map[string]SlotState, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "1" {
		return nil, fmt.Errorf("show servers state: unexpected reply %q", firstLine(out))
	}
	all := map[string]map[string]SlotState{}
	for _, line := range lines[1:] {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 22 {
			return nil, fmt.Errorf("show servers state: short line %q", line)
		}
		nums, err := atois(f[6], f[7], f[18], f[21], f[13])
		if err != nil {
			return nil, fmt.Errorf("show servers state: line %q: %w", line, err)
		}
		admin := AdminReady
		switch {
		// CMAINT alone (a `disabled` server set ready at runtime) takes traffic.
		case nums[0]&(admForcedMaint|admInheritMaint|admResolverMaint|admHostMaint) != 0:
			admin = AdminMaint
		case nums[0]&(admForcedDrain|admInheritDrain) != 0:
			admin = AdminDrain
		}
		if all[f[1]] == nil {
			all[f[1]] = map[string]SlotState{}
		}
		fqdn := f[17]
		if fqdn == "-" {
			fqdn = ""
		}
		all[f[1]][f[3]] = SlotState{Name: f[3], Addr: f[4], FQDN: fqdn, Admin: admin, UWeight: nums[1], Port: nums[2], CheckPort: nums[3],
			Checked: nums[4]&chkConfigured != 0}
	}
	return all, nil
}

// ParseStat merges `show stat <backend> 4 -1` (CSV) status and backup flag
// into slots parsed from `show servers state`.
// On error the slots are left as they were.
func ParseStat(out string, slots map[string]SlotState) error {
	merged := maps.Clone(slots)
	err := parseStat(out, func(_, name string) (map[string]SlotState, bool) {
		_, ok := merged[name]
		return merged, ok
	})
	if err == nil {
		err = complete(out, merged)
	}
	if err != nil {
		return err
	}
	maps.Copy(slots, merged)
	return nil
}

// ParseAllStat merges `show stat -1 4 -1` into every backend's slots. On
// error the slots are left as they were.
func ParseAllStat(out string, all map[string]map[string]SlotState) error {
	merged := make(map[string]map[string]SlotState, len(all))
	for backend, slots := range all {
		merged[backend] = maps.Clone(slots)
	}
	err := parseStat(out, func(backend, name string) (map[string]SlotState, bool) {
		b := merged[backend]
		_, ok := b[name]
		return b, ok
	})
	if err != nil {
		return err
	}
	for _, slots := range merged {
		if err := complete(out, slots); err != nil {
			return err
		}
	}
	for backend, slots := range merged {
		maps.Copy(all[backend], slots)
	}
	return nil
}

// complete rejects a `show stat` reply that lacks a server `show servers
// state` listed: a cut-short reply must fail the pass (HAProxy untouched),
// not read as servers without a backup flag, which would look structural.
func complete(out string, slots map[string]SlotState) error {
	for name, s := range slots {
		if s.Status == "" {
			return fmt.Errorf("show stat: incomplete reply, no row for server %s (%d bytes)", name, len(out))
		}
	}
	return nil
}

func parseStat(out string, find func(backend, name string) (map[string]SlotState, bool)) error {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.TrimSpace(out), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return fmt.Errorf("show stat: unexpected reply %q", firstLine(out))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, need := range []string{"pxname", "svname", "status", "bck"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("show stat: no %s column in %q", need, firstLine(out))
		}
	}
	for _, row := range rows[1:] {
		if len(row) <= col["bck"] || len(row) <= col["status"] || len(row) <= col["svname"] || len(row) <= col["pxname"] {
			continue
		}
		name := row[col["svname"]]
		slots, ok := find(row[col["pxname"]], name)
		if !ok {
			if name != "FRONTEND" && name != "BACKEND" && slots != nil {
				// A server of a backend `show servers state` listed, but
				// not in it: that reply was cut short at a line boundary.
				return fmt.Errorf("show servers state: incomplete reply, no line for server %s/%s that show stat lists", row[col["pxname"]], name)
			}
			continue // FRONTEND/BACKEND rows, or a backend not asked for
		}
		s := slots[name]
		s.Status = row[col["status"]]
		s.Backup = row[col["bck"]] == "1"
		if i, ok := col["scur"]; ok && i < len(row) {
			s.Sessions, _ = strconv.Atoi(row[i]) // empty on some rows: none
		}
		slots[name] = s
	}
	return nil
}

func atois(ss ...string) ([]int, error) {
	out := make([]int, len(ss))
	for i, s := range ss {
		if s == "-" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
