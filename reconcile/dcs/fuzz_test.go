package dcs

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pgsvc/pgsvc/selector"
)

// Native Go fuzzing of what pgsvc reads from etcd. Seed corpora:
// testdata/fuzz/<FuzzName>/ (recorded Patroni 3/4 member values and etcdctl
// snapshots from fixtures/patroni, override values, known-bad shapes).

// FuzzParseMember: any bytes are a member or an error (with a zero member),
// never a panic; an accepted value is stored by State.Put as parsed.
func FuzzParseMember(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMember(data)
		if err != nil {
			if !reflect.DeepEqual(m, selector.Member{}) {
				t.Fatalf("error %v with a partial member %+v", err, m)
			}
			return
		}
		// A parsed member goes into a state and resolves without panics.
		st := NewState()
		if err := st.Put(DefaultLayout(), "/pg/c/members/c-1", data); err != nil {
			t.Fatalf("Put refused a value ParseMember accepted: %v", err)
		}
		if got := st.Clusters["c"].Members["c-1"]; !reflect.DeepEqual(got, m) {
			t.Fatalf("Put stored %+v, ParseMember returned %+v", got, m)
		}
		_ = st.Live(map[string]string{})
	})
}

// FuzzParseHistory: any bytes are a history or an error; an accepted history
// names the member Put stores, a refused one leaves the key absent (as a
// fresh list that skipped it would).
// Seeds: testdata/fuzz/FuzzParseHistory (recorded from Patroni 3.0.2).
func FuzzParseHistory(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		promoted, err := ParseHistory(data)
		st := NewState()
		st.cluster("c").Promoted = "c-9"
		putErr := st.Put(DefaultLayout(), "/pg/c/history", data)
		if (err == nil) != (putErr == nil) {
			t.Fatalf("ParseHistory error %v, Put error %v", err, putErr)
		}
		want := promoted
		if err != nil {
			if promoted != "" {
				t.Fatalf("error %v with a leader %q", err, promoted)
			}
			want = ""
		}
		if got := st.Clusters["c"].Promoted; got != want {
			t.Fatalf("Put stored %q, want %q", got, want)
		}
	})
}

// FuzzParseOverride: any bytes are a valid override or an error; an accepted
// override passes CheckOverride key by key and survives EncodeOverride.
func FuzzParseOverride(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseOverride(data)
		if err != nil {
			if vars != nil {
				t.Fatalf("error %v with partial vars %v", err, vars)
			}
			return
		}
		if vars == nil {
			t.Fatal("nil vars without an error")
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %q, which is not one JSON value", data)
		}
		for k, v := range vars {
			if err := CheckOverride(k, v); err != nil {
				t.Fatalf("accepted %s=%v that CheckOverride refuses: %v", k, v, err)
			}
		}
		enc, err := EncodeOverride(vars)
		if err != nil {
			t.Fatalf("EncodeOverride: %v", err)
		}
		back, err := ParseOverride(enc)
		if err != nil || !reflect.DeepEqual(back, vars) {
			t.Fatalf("round trip %s: %v, %v", enc, back, err)
		}
	})
}

// FuzzParseSnapshot: any bytes are a snapshot or an error; the keys of an
// accepted snapshot go through State.PutKV, where a refused value leaves the
// state as it was without that key: the same as a fresh list, which skips it.
func FuzzParseSnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rev, kvs, err := ParseSnapshot(data)
		if err != nil {
			if rev != 0 || kvs != nil {
				t.Fatalf("error %v with partial result rev=%d kvs=%d", err, rev, len(kvs))
			}
			return
		}
		st := NewState()
		st.Revision = rev
		for _, kv := range kvs {
			want := cloneState(st)
			if err := st.PutKV(DefaultLayout(), kv); err != nil {
				want.Delete(DefaultLayout(), kv.Key)
				if !reflect.DeepEqual(want, st) {
					t.Fatalf("PutKV(%q) failed with %v but did not leave the state as it was without the key", kv.Key, err)
				}
			}
		}
		for _, scope := range st.Scopes() {
			_ = ResolveLeader(st.Clusters[scope])
		}
		_ = st.Live(map[string]string{})
	})
}

func cloneState(s *State) *State {
	c := NewState()
	c.Revision = s.Revision
	for scope, cl := range s.Clusters {
		c.Clusters[scope] = cl.Clone()
	}
	for k, v := range s.Overrides {
		c.Overrides[k] = v
	}
	return c
}
