package jmes

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordedCase struct {
	Expr   string  `json:"expr"`
	Input  string  `json:"input"`
	Result *string `json:"result"`
	Error  string  `json:"error"`
	Phase  string  `json:"phase"`
}

func recorded(t testing.TB) []recordedCase {
	data, err := os.ReadFile("testdata/python-1.0.1.json")
	require.NoError(t, err)
	var rec struct {
		Cases []recordedCase `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(data, &rec))
	require.NotEmpty(t, rec.Cases)
	return rec.Cases
}

// TestPythonJMESPath runs every case Python jmespath 1.0.1 answered
// (testdata/record.py) and requires the same answer: the result exactly as
// Python's json.dumps prints it (so key order, int vs float, and escapes
// count), or an error where Python raised, in the same phase.
func TestPythonJMESPath(t *testing.T) {
	for _, c := range recorded(t) {
		t.Run(c.Expr, func(t *testing.T) {
			input, err := DecodeJSON([]byte(c.Input))
			require.NoError(t, err)
			e, err := Compile(c.Expr)
			if c.Phase == "compile" {
				require.Error(t, err, "Python: %s compiling", c.Error)
				var se *SyntaxError
				require.True(t, errors.As(err, &se))
				return
			}
			require.NoError(t, err, "Python compiles it")
			got, err := e.Search(input)
			if c.Phase == "search" {
				require.Error(t, err, "Python: %s searching; pgsvc returned %v", c.Error, got)
				var ee *EvalError
				require.True(t, errors.As(err, &ee))
				return
			}
			require.NoError(t, err)
			text, err := MarshalPython(got)
			if c.Phase == "dump" {
				require.Error(t, err, "Python's json.dumps refused the result")
				return
			}
			require.NotNil(t, c.Result)
			require.NoError(t, err)
			assert.Equal(t, *c.Result, text)
		})
	}
}

// Errors name types and functions, never the data: host records hold
// passwords.
func TestErrorsHideValues(t *testing.T) {
	secret := `[{"pg_seq": 1, "password": "hunter2"}]`
	input, err := DecodeJSON([]byte(secret))
	require.NoError(t, err)
	for _, expr := range []string{"[? password > `1` ]", "abs([0].password)", "sort_by(@, &password)[0] | keys(password)", "contains([0].password, `1`)"} {
		e, err := Compile(expr)
		require.NoError(t, err)
		_, err = e.Search(input)
		require.Error(t, err, expr)
		assert.NotContains(t, err.Error(), "hunter2", expr)
	}
}

// Deep nesting is an error, never a stack overflow, and a long selector
// costs little.
func TestDeepAndLong(t *testing.T) {
	_, err := Compile(strings.Repeat("(", 100000) + "a" + strings.Repeat(")", 100000))
	require.Error(t, err)
	long := strings.Repeat("a || ", 60000) + "a"
	e, err := Compile(long)
	if err == nil {
		_, err = e.Search(map[string]any{})
	}
	require.Error(t, err, "a 300 KB chain is deeper than Python's recursion limit")
}

func FuzzSearch(f *testing.F) {
	for _, c := range recorded(f) {
		f.Add(c.Expr)
	}
	records := `[{"inventory_hostname": "10.0.0.1", "pg_seq": 1, "pg_role": "primary", "w": 1.5, "m": {"b": 1, "a": [1, "x"]}},
		{"inventory_hostname": "10.0.0.2", "pg_seq": "2", "pg_role": "replica", "t": true, "m": {}}]`
	input, err := DecodeJSON([]byte(records))
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Compile(expr)
		if err != nil {
			return
		}
		a, errA := e.Search(input)
		b, errB := e.Search(input)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("%q: error on one search only: %v / %v", expr, errA, errB)
		}
		if errA != nil {
			return
		}
		ta, err1 := MarshalPython(a)
		tb, err2 := MarshalPython(b)
		if (err1 == nil) != (err2 == nil) || ta != tb {
			t.Fatalf("%q: not deterministic: %s / %s (%v %v)", expr, ta, tb, err1, err2)
		}
	})
}

// TestMergeKeys: merge() runs Python's dict.update on every argument after
// the first, unchecked, so pairs become keys; a pair whose key is not a
// string is something Python keeps and pgsvc's objects cannot hold: an
// error marked Unmodelled, never a different answer. What Python raises
// is an EvalError that is not.
func TestMergeKeys(t *testing.T) {
	tests := []struct {
		expr       string
		want       string // the result, or "" for an error
		unmodelled bool
	}{
		{"merge(`{}`, `[[\"a\", 1]]`)", `{"a":1}`, false},
		{"merge(`{}`, `[[1, 2]]`)", "", true},
		{"merge(`{}`, `[[true, 2]]`)", "", true},
		{"merge(`{}`, `[[null, 2]]`)", "", true},
		{"merge(`{}`, `[[1.5, 2]]`)", "", true},
		{"merge(`{}`, `[[[1], 2]]`)", "", false}, // unhashable in Python too
		{"merge(`{}`, `[1]`)", "", false},
		{"merge(`{}`, `1`)", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := Compile(tt.expr)
			require.NoError(t, err)
			got, err := e.Search(nil)
			if tt.want != "" {
				require.NoError(t, err)
				text, err := MarshalPython(got)
				require.NoError(t, err)
				assert.Equal(t, tt.want, text)
				return
			}
			var ee *EvalError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.unmodelled, ee.Unmodelled, ee.Msg)
		})
	}
}
