package dcs

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
)

// KV is one etcd key and value, with the revisions etcd reports for it.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// snapshotJSON is the output of `etcdctl get --prefix <ns> -w json`: keys and
// values base64-encoded.
type snapshotJSON struct {
	Header *struct {
		Revision int64 `json:"revision"`
	} `json:"header"`
	KVs []struct {
		Key            string `json:"key"`
		Value          string `json:"value"`
		CreateRevision int64  `json:"create_revision"`
		ModRevision    int64  `json:"mod_revision"`
	} `json:"kvs"`
}

// ParseSnapshot decodes etcdctl's JSON output.
func ParseSnapshot(data []byte) (revision int64, kvs []KV, err error) {
	var snap snapshotJSON
	if strings.TrimSpace(string(data)) == "" {
		return 0, nil, fmt.Errorf("empty file, want the output of `etcdctl get --prefix <namespace> -w json`")
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		return 0, nil, fmt.Errorf("not etcdctl JSON output: %s", jsonError(err))
	}
	if snap.Header == nil {
		return 0, nil, fmt.Errorf("no header: want the output of `etcdctl get --prefix <namespace> -w json`")
	}
	for i, kv := range snap.KVs {
		k, err := base64.StdEncoding.DecodeString(kv.Key)
		if err != nil {
			return 0, nil, fmt.Errorf("kvs[%d]: key is not base64: %v", i, err)
		}
		v, err := base64.StdEncoding.DecodeString(kv.Value)
		if err != nil {
			return 0, nil, fmt.Errorf("kvs[%d] (%s): value is not base64: %v", i, k, err)
		}
		kvs = append(kvs, KV{Key: string(k), Value: v, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision})
	}
	return snap.Header.Revision, kvs, nil
}

// jsonError says what is wrong with a JSON document in its own terms: the
// JSON path and kinds, never the Go types it was decoded into.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	field := te.Field
	if field == "" {
		field = "the document"
	}
	want := "an object"
	switch te.Type.Kind() {
	case reflect.Int64:
		want = "an integer"
	case reflect.String:
		want = "a string"
	case reflect.Slice:
		want = "a list"
	}
	return fmt.Sprintf("%s is %s, want %s (at byte %d)", field, jsonKind(te.Value), want, te.Offset)
}

// jsonKind names a JSON value kind as encoding/json reports it.
func jsonKind(v string) string {
	switch v {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	}
	if v == "number" {
		return "a number"
	}
	if strings.HasPrefix(v, "number ") {
		return "the " + v // "number 1.5": the value that does not fit
	}
	return v
}

// LoadSnapshot reads a --state file into a State. Every malformed key is an
// error naming the file and the key.
func LoadSnapshot(path string, l Layout) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	rev, kvs, err := ParseSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	st := NewState()
	st.Revision = rev
	for _, kv := range kvs {
		if err := st.PutKV(l, kv); err != nil {
			return nil, fmt.Errorf("state %s: %w", path, err)
		}
	}
	return st, nil
}
