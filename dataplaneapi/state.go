package dataplaneapi

import (
	"encoding/csv"
	"errors"
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

// Operational states of `show servers state` srv_op_state (HAProxy's
// SRV_ST_*): what health checks (or `set server health`) decided.
const (
	OpStopped  = 0
	OpStarting = 1
	OpRunning  = 2
	OpStopping = 3
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
	Checked bool
	// Op is the operational state (OpStopped ... OpStopping): health as
	// HAProxy's checks or `set server health` left it, whatever the admin
	// state. A server without checks is always running.
	Op int
	// Status is show stat's status (UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/3",
	// ...) when it was read; else the same words from Op and Admin.
	Status string
	Backup bool // show stat bck
	// Sessions is show stat's scur, the sessions open on the server now;
	// -1 when show stat was not read.
	Sessions int
}

// Up reports whether HAProxy would send the server traffic by health: not
// in maintenance, and its checks (or a forced health) have it up. A server
// without checks is always up for HAProxy.
func (s SlotState) Up() bool {
	return s.Admin != AdminMaint && s.Op != OpStopped
}

// HealthUp reports whether the server's health is up (running, or ramping
// up in slowstart), whatever its admin state.
func (s SlotState) HealthUp() bool {
	return s.Op == OpRunning || s.Op == OpStarting
}

// statusOf words a slot's state as show stat would, for servers whose
// show stat row was not read.
func statusOf(s SlotState) string {
	switch {
	case s.Admin == AdminMaint:
		return "MAINT"
	case s.Op == OpStopped:
		return "DOWN"
	case s.Admin == AdminDrain:
		return "DRAIN"
	case s.Op == OpStopping:
		return "NOLB"
	case !s.Checked:
		return "no check"
	}
	return "UP"
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
	body := strings.TrimSpace(out)
	version, rest, _ := strings.Cut(body, "\n")
	if strings.TrimSpace(version) != "1" {
		return nil, fmt.Errorf("show servers state: unexpected reply %q", firstLine(out))
	}
	all := map[string]map[string]SlotState{}
	var f [22]string // the fields read; the line's others are not split
	var backend string
	var slots map[string]SlotState
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if fields(line, f[:]) < len(f) {
			return nil, fmt.Errorf("show servers state: short line %q", line)
		}
		nums, err := atois([6]string{f[6], f[7], f[18], f[21], f[13], f[5]})
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
		if slots == nil || f[1] != backend {
			backend = f[1]
			if slots = all[backend]; slots == nil {
				slots = map[string]SlotState{}
				all[backend] = slots
			}
		}
		fqdn := f[17]
		if fqdn == "-" {
			fqdn = ""
		}
		slot := SlotState{Name: f[3], Addr: f[4], FQDN: fqdn, Admin: admin, UWeight: nums[1], Port: nums[2], CheckPort: nums[3],
			Checked: nums[4]&chkConfigured != 0, Op: nums[5], Sessions: -1}
		slot.Status = statusOf(slot)
		slots[f[3]] = slot
	}
	return all, nil
}

// fields splits line at runs of blanks, as strings.Fields does for
// HAProxy's ASCII, into dst (without allocating) and returns how many it
// filled: at most len(dst).
func fields(line string, dst []string) int {
	n, start := 0, -1
	for i := 0; i < len(line); i++ {
		blank := line[i] == ' ' || line[i] == '\t' || line[i] == '\r'
		switch {
		case blank && start >= 0:
			dst[n], start = line[start:i], -1
			if n++; n == len(dst) {
				return n
			}
		case !blank && start < 0:
			start = i
		}
	}
	if start >= 0 {
		dst[n] = line[start:]
		n++
	}
	return n
}

// ParseStat merges `show stat <backend> 4 -1` (CSV) status and backup flag
// into slots parsed from `show servers state`.
// On error the slots are left as they were.
func ParseStat(out string, slots map[string]SlotState) error {
	merged := maps.Clone(slots)
	seen := map[string]bool{}
	err := parseStat(out, func(_, name string) (map[string]SlotState, bool) {
		_, ok := merged[name]
		seen[name] = seen[name] || ok
		return merged, ok
	})
	if err == nil {
		err = complete(out, merged, seen, "")
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
	seen := map[string]bool{}
	err := parseStat(out, func(backend, name string) (map[string]SlotState, bool) {
		b := merged[backend]
		_, ok := b[name]
		if ok {
			seen[backend+"/"+name] = true
		}
		return b, ok
	})
	if err != nil {
		return err
	}
	for backend, slots := range merged {
		if err := complete(out, slots, seen, backend+"/"); err != nil {
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
func complete(out string, slots map[string]SlotState, seen map[string]bool, prefix string) error {
	for name := range slots {
		if !seen[prefix+name] {
			return fmt.Errorf("show stat: incomplete reply, no row for server %s (%d bytes)", name, len(out))
		}
	}
	return nil
}

// parseStat reads the columns it needs from `show stat` CSV. A full pass
// reads ~8 MB for 32,000 servers: lines are split only up to the last
// column needed; a line with a quoted field before it (HAProxy quotes
// fields holding commas; names never do) goes through encoding/csv.
func parseStat(out string, find func(backend, name string) (map[string]SlotState, bool)) error {
	body := strings.TrimPrefix(strings.TrimSpace(out), "# ")
	header, rest, _ := strings.Cut(body, "\n")
	if header == "" {
		return fmt.Errorf("show stat: unexpected reply %q", firstLine(out))
	}
	col := map[string]int{}
	if !strings.ContainsAny(header, "\"") {
		for i, h := range strings.Split(header, ",") {
			col[h] = i
		}
	}
	for _, need := range []string{"pxname", "svname", "status", "bck"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("show stat: no %s column in %q", need, firstLine(out))
		}
	}
	scur, hasScur := col["scur"]
	last := max(col["pxname"], col["svname"], col["status"], col["bck"], scur)
	fields := make([]string, 0, last+2)
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if line == "" {
			continue
		}
		row, err := statFields(line, last, fields[:0])
		if err != nil {
			return fmt.Errorf("show stat: line %q: %w", firstLine(line), err)
		}
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
		s.Sessions = 0 // empty on some rows: none
		if hasScur && scur < len(row) {
			s.Sessions, _ = strconv.Atoi(row[scur])
		}
		slots[name] = s
	}
	return nil
}

// statFields splits a CSV line into its fields up to index last (the rest
// stays unsplit in the field after it).
func statFields(line string, last int, into []string) ([]string, error) {
	rest := line
	for len(into) <= last {
		if strings.HasPrefix(rest, "\"") {
			r := csv.NewReader(strings.NewReader(line))
			r.FieldsPerRecord = -1
			row, err := r.Read()
			if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
				err = pe.Err // its line and column are this line's
			}
			return row, err
		}
		f, after, more := strings.Cut(rest, ",")
		into = append(into, f)
		if !more {
			return into, nil
		}
		rest = after
	}
	return append(into, rest), nil
}

func atois(ss [6]string) ([6]int, error) {
	var out [6]int
	for i, s := range ss {
		if s == "-" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return out, err
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
