package dcs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSnapshotErrors: a malformed --state file is described in JSON terms.
// encoding/json's own messages named Go types ("Go value of type
// dcs.snapshotJSON", "Go struct field snapshotJSON.kvs of type []struct").
func TestSnapshotErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`[]`, "not etcdctl JSON output: the document is a list, want an object (at byte 1)"},
		{`"x"`, "not etcdctl JSON output: the document is a string, want an object (at byte 3)"},
		{`{"header":5}`, "not etcdctl JSON output: header is a number, want an object (at byte 11)"},
		{`{"header":{"revision":"7"},"kvs":[]}`, "not etcdctl JSON output: header.revision is a string, want an integer (at byte 25)"},
		{`{"header":{"revision":1.5},"kvs":[]}`, "not etcdctl JSON output: header.revision is the number 1.5, want an integer (at byte 25)"},
		{`{"header":{"revision":true}}`, "not etcdctl JSON output: header.revision is a boolean, want an integer (at byte 26)"},
		{`{"header":{"revision":7},"kvs":{}}`, "not etcdctl JSON output: kvs is an object, want a list (at byte 32)"},
		{`{"header":{"revision":7},"kvs":[{"key":5}]}`, "not etcdctl JSON output: kvs.key is a number, want a string (at byte 40)"},
		{`{"header":`, "not etcdctl JSON output: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, kvs, err := ParseSnapshot([]byte(tt.in))
			require.Error(t, err)
			assert.Nil(t, kvs)
			assert.Equal(t, tt.want, err.Error())
			assert.NotContains(t, err.Error(), "Go ")
		})
	}
}
