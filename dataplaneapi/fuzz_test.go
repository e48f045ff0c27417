package dataplaneapi

import (
	"reflect"
	"strings"
	"testing"
)

// Native Go fuzzing of HAProxy's replies as pgsvc parses them. Seed corpora:
// testdata/fuzz/<FuzzName>/ (replies captured from HAProxy 2.6.12, error
// replies, truncated and reordered variants).

// FuzzParseServersState: any reply is slots or an error (with no slots);
// every slot has a name, is keyed by it, and has a printable admin state.
func FuzzParseServersState(f *testing.F) {
	f.Fuzz(func(t *testing.T, out string) {
		slots, err := ParseServersState(out)
		if err != nil {
			if slots != nil {
				t.Fatalf("error %v with partial slots %v", err, slots)
			}
			return
		}
		for name, s := range slots {
			if name == "" || s.Name == "" {
				t.Fatalf("slot with an empty name: %q %+v", name, s)
			}
			if name != s.Name {
				t.Fatalf("slot keyed %q is named %q", name, s.Name)
			}
			if strings.ContainsAny(name, " \t\r\n") {
				t.Fatalf("slot name %q holds whitespace", name)
			}
			_ = s.Admin.String()
			_ = s.Up()
		}
		// The every-backend variant parses the same lines into the same slots.
		all, err := ParseAllServersState(out)
		if err != nil {
			t.Fatalf("ParseServersState accepted what ParseAllServersState refuses: %v", err)
		}
		n := 0
		for backend, b := range all {
			if backend == "" {
				t.Fatal("backend with an empty name")
			}
			for name, s := range b {
				n++
				if name == "" || name != s.Name {
					t.Fatalf("backend %s: slot keyed %q is named %q", backend, name, s.Name)
				}
				if _, ok := slots[name]; !ok {
					t.Fatalf("backend %s: slot %s missing from ParseServersState", backend, name)
				}
			}
		}
		if n < len(slots) {
			t.Fatalf("ParseAllServersState has %d slots, ParseServersState %d", n, len(slots))
		}
	})
}

// FuzzParseStat merges any `show stat` reply into the slots of a real
// `show servers state` reply, with ParseStat (one backend) and ParseAllStat
// (every backend): an error leaves the slots untouched, success only changes
// Status and Backup of existing slots.
func FuzzParseStat(f *testing.F) {
	base, err := ParseServersState(serversState)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, out string) {
		slots := copySlots(base)
		checkStatMerge(t, "ParseStat", ParseStat(out, slots), base, slots)

		all := map[string]map[string]SlotState{"pg-test-replica": copySlots(base), "other": copySlots(base)}
		err := ParseAllStat(out, all)
		if len(all) != 2 {
			t.Fatalf("ParseAllStat added or removed backends: %d", len(all))
		}
		for _, b := range all {
			checkStatMerge(t, "ParseAllStat", err, base, b)
		}
	})
}

func copySlots(m map[string]SlotState) map[string]SlotState {
	out := make(map[string]SlotState, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func checkStatMerge(t *testing.T, fn string, err error, base, slots map[string]SlotState) {
	t.Helper()
	if err != nil {
		if !reflect.DeepEqual(slots, base) {
			t.Fatalf("%s: error %v but the slots changed", fn, err)
		}
		return
	}
	if len(slots) != len(base) {
		t.Fatalf("%s added or removed slots: %d -> %d", fn, len(base), len(slots))
	}
	for name, s := range slots {
		b := base[name]
		b.Status, b.Backup = s.Status, s.Backup
		if !reflect.DeepEqual(s, b) {
			t.Fatalf("%s: slot %s: more than status/backup changed: %+v -> %+v", fn, name, base[name], s)
		}
	}
}

// FuzzParseShowProc: any master CLI reply is a status or an error with a
// zero status; counts are what the master line says, workers are pids.
func FuzzParseShowProc(f *testing.F) {
	f.Fuzz(func(t *testing.T, out string) {
		st, err := ParseShowProc(out)
		if err != nil {
			if !reflect.DeepEqual(st, MasterStatus{}) {
				t.Fatalf("error %v with partial status %+v", err, st)
			}
			return
		}
		if !strings.Contains(out, "master") {
			t.Fatalf("status %+v from a reply without a master line", st)
		}
	})
}

// FuzzCheckReply: any reply to any command is accepted or refused without a
// panic; blank replies are success, refusals name the command.
func FuzzCheckReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind, line, reply string) {
		c := Command{Kind: kind, Line: line}
		err := CheckReply(c, reply)
		blank := strings.TrimSpace(reply) == ""
		switch {
		case blank && err != nil:
			t.Fatalf("blank reply %q refused: %v", reply, err)
		case err != nil && !strings.HasPrefix(err.Error(), "haproxy refused "):
			t.Fatalf("refusal does not say so: %v", err)
		case err == nil && !blank && kind != "addr":
			t.Fatalf("non-empty reply %q accepted for a %q command", reply, kind)
		case err == nil && !blank && !strings.HasPrefix(strings.TrimSpace(reply), "[4]:"):
			t.Fatalf("addr reply %q accepted without the [4]: notice", reply)
		}
	})
}
