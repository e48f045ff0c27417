package dataplaneapi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Native Go fuzzing of HAProxy's replies as pgsvc parses them. Seed corpora:
// testdata/fuzz/<FuzzName>/ (replies captured from HAProxy 2.6.12, error
// replies, truncated and reordered variants).

// FuzzParseServersState: any reply is slots or an error (with no slots),
// every slot named and keyed by its name; and servers rendered from fuzzed
// values (gen) in HAProxy 2.6's format 1 parse back to exactly those
// values: address, host name, ports, user weight, checks, admin and
// operational state, with a status that agrees with Up().
func FuzzParseServersState(f *testing.F) {
	f.Fuzz(func(t *testing.T, out string, gen []byte) {
		slots, err := ParseServersState(out)
		if err != nil && slots != nil {
			t.Fatalf("error %v with partial slots %v", err, slots)
		}
		for name, s := range slots {
			if name == "" || name != s.Name || strings.ContainsAny(name, " \t\r\n") {
				t.Fatalf("slot keyed %q is named %q", name, s.Name)
			}
		}

		admins := []struct {
			bits int
			want AdminState
		}{{0, AdminReady}, {0x04, AdminReady}, {0x01, AdminMaint}, {0x20, AdminMaint}, {0x08, AdminDrain}, {0x0c, AdminDrain}, {0x09, AdminMaint}}
		var b strings.Builder
		b.WriteString("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n")
		want := map[string]SlotState{}
		for i := 0; i+4 < len(gen) && i < 60; i += 5 {
			name := fmt.Sprintf("pg-x-%d%s", i/5, map[bool]string{true: BackupSuffix}[gen[i]&1 == 1])
			ad := admins[int(gen[i+1])%len(admins)]
			st := SlotState{Name: name, Addr: fmt.Sprintf("10.%d.%d.%d", gen[i], gen[i+1], gen[i+2]), Port: 1 + int(gen[i+2])*200,
				CheckPort: int(gen[i+3]) * 100, UWeight: int(gen[i+4]), Admin: ad.want, Checked: gen[i+3]&1 == 1, Op: int(gen[i+2]>>1) % 4, Sessions: -1}
			fqdn := "-"
			if gen[i+4]&1 == 1 {
				st.FQDN, fqdn = fmt.Sprintf("db%d.example", i), fmt.Sprintf("db%d.example", i)
			}
			check := 0x04
			if st.Checked {
				check |= chkConfigured
			}
			fmt.Fprintf(&b, "3 pg-x-replica %d %s %s %d %d %d 1 12 6 3 4 %d 0 0 0 %s %d - 0 %d - - 0\n",
				i/5+1, name, st.Addr, st.Op, ad.bits, st.UWeight, check, fqdn, st.Port, st.CheckPort)
			want[name] = st
		}
		got, err := ParseServersState(b.String())
		if err != nil {
			t.Fatalf("rendered servers state refused: %v\n%s", err, b.String())
		}
		if len(want) == 0 {
			want = map[string]SlotState{}
		}
		for name, s := range got {
			// The words show stat would print agree with the health pgsvc
			// acts on: traffic by health exactly when neither MAINT nor DOWN.
			if s.Up() == (s.Status == "MAINT" || s.Status == "DOWN") {
				t.Fatalf("%s: Up() is %v with status %q (admin %s, op %d)", name, s.Up(), s.Status, s.Admin, s.Op)
			}
			s.Status = ""
			got[name] = s
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parsed %+v\nwant   %+v\nfrom\n%s", got, want, b.String())
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
// zero status; and a reply rendered the way HAProxy 2.6 prints `show proc`
// from fuzzed values (master reloads, failed reloads, current and old
// workers) parses back to exactly those values: old workers are not
// current ones, the failed count is read from "[failed: N]".
func FuzzParseShowProc(f *testing.F) {
	f.Add("", uint16(31448), uint8(0), uint8(0), []byte{1}, []byte{})
	f.Add("", uint16(31448), uint8(2), uint8(1), []byte{3}, []byte{2})
	f.Fuzz(func(t *testing.T, out string, master uint16, reloads, failed uint8, workers, old []byte) {
		st, err := ParseShowProc(out)
		if err != nil && !reflect.DeepEqual(st, MasterStatus{}) {
			t.Fatalf("error %v with partial status %+v", err, st)
		}
		var b strings.Builder
		b.WriteString("#<PID>          <type>          <reloads>       <uptime>        <version>\n")
		fmt.Fprintf(&b, "%-15d master          %d", int(master)+1, reloads)
		if failed > 0 {
			fmt.Fprintf(&b, " [failed: %d]", failed)
		}
		b.WriteString("   0d00h00m02s     2.6.12-1+deb12u4\n# workers\n")
		var want []int
		for i, w := range workers {
			pid := 100000 + i*256 + int(w)
			want = append(want, pid)
			fmt.Fprintf(&b, "%-15d worker          0               0d00h00m02s     2.6.12-1+deb12u4\n", pid)
		}
		if len(old) > 0 {
			b.WriteString("# old workers\n")
			for i, w := range old {
				fmt.Fprintf(&b, "%-15d worker          %d               0d00h01m02s     2.6.12-1+deb12u4\n", 200000+i*256+int(w), i+1)
			}
		}
		b.WriteString("# programs\n\n")
		got, err := ParseShowProc(b.String())
		if err != nil {
			t.Fatalf("a rendered show proc is refused: %v\n%s", err, b.String())
		}
		if exp := (MasterStatus{Reloads: int(reloads), Failed: int(failed), Workers: want}); !reflect.DeepEqual(got, exp) {
			t.Fatalf("parsed %+v, want %+v from\n%s", got, exp, b.String())
		}
	})
}

// FuzzCheckReply: any reply to any command is accepted or refused without a
// panic. Refusals are *RefusedError quoting the command and the reply's
// first line (what the operator reads); the decision does not depend on
// surrounding whitespace; a reply with any text HAProxy did not send for
// success (anything but blank, or the addr command's [4] change notice) is
// refused.
func FuzzCheckReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind, line, reply string) {
		c := Command{Kind: kind, Line: line}
		err := CheckReply(c, reply)
		if again := CheckReply(c, "\n "+reply+" \n\n"); (err == nil) != (again == nil) {
			t.Fatalf("whitespace around %q changes the decision: %v vs %v", reply, err, again)
		}
		trimmed := strings.TrimSpace(reply)
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("refusal is not a RefusedError: %v", err)
			}
			if re.Command != line || !strings.HasPrefix(trimmed, re.Reply) || re.Reply == "" {
				t.Fatalf("refusal %+v does not quote the command %q and the reply %q", re, line, trimmed)
			}
			return
		}
		notice := kind == "addr" && strings.HasPrefix(trimmed, "[4]:") &&
			(strings.Contains(trimmed, "changed from") || strings.Contains(trimmed, "no need to change"))
		if trimmed != "" && !notice {
			t.Fatalf("reply %q accepted for a %q command", reply, kind)
		}
	})
}
