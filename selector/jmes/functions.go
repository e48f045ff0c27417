package jmes

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// argType is a function parameter's accepted types, as Python jmespath's
// signatures spell them.
type argType []string

type signature struct {
	args     []argType
	variadic bool
}

func sig(args ...argType) signature { return signature{args: args} }

func (s signature) orMore() signature { s.variadic = true; return s }

var (
	tNumberArg  = argType{"number"}
	tStringArg  = argType{"string"}
	tArrayArg   = argType{"array"}
	tObjectArg  = argType{"object"}
	tAnyArg     = argType{}
	tExprefArg  = argType{"expref"}
	tNumStrList = argType{"array-number", "array-string"}
)

func signatureOf(name string) (signature, bool) {
	switch name {
	case "abs", "ceil", "floor":
		return sig(tNumberArg), true
	case "avg", "sum":
		return sig(argType{"array-number"}), true
	case "contains":
		return sig(argType{"array", "string"}, tAnyArg), true
	case "ends_with", "starts_with":
		return sig(tStringArg, tStringArg), true
	case "join":
		return sig(tStringArg, argType{"array-string"}), true
	case "keys", "values":
		return sig(tObjectArg), true
	case "length":
		return sig(argType{"string", "array", "object"}), true
	case "map":
		return sig(tExprefArg, tArrayArg), true
	case "max", "min", "sort":
		return sig(tNumStrList), true
	case "max_by", "min_by", "sort_by":
		return sig(tArrayArg, tExprefArg), true
	case "merge":
		return sig(tObjectArg).orMore(), true
	case "not_null":
		return sig(tAnyArg).orMore(), true
	case "reverse":
		return sig(argType{"array", "string"}), true
	case "to_array", "to_number", "to_string", "type":
		return sig(tAnyArg), true
	}
	return signature{}, false
}

func (in *interp) call(name string, args []any) (any, error) {
	s, ok := signatureOf(name)
	if !ok {
		return nil, evalErrorf("unknown function: %s()", name)
	}
	if s.variadic && len(args) < len(s.args) {
		return nil, evalErrorf("expected at least %d arguments for function %s(), received %d", len(s.args), name, len(args))
	}
	if !s.variadic && len(args) != len(s.args) {
		return nil, evalErrorf("expected %d arguments for function %s(), received %d", len(s.args), name, len(args))
	}
	// Python checks the declared parameters only: merge's objects after
	// the first reach dict.update unchecked.
	for i, t := range s.args {
		if err := typeCheck(name, args[i], t); err != nil {
			return nil, err
		}
	}
	switch name {
	case "abs":
		if i, ok := toInt64(args[0]); ok {
			if i < 0 {
				if i == math.MinInt64 {
					return -float64(i), nil
				}
				return -i, nil
			}
			return i, nil
		}
		return math.Abs(args[0].(float64)), nil
	case "avg":
		list := args[0].([]any)
		if len(list) == 0 {
			return nil, nil
		}
		total, _ := number(sum(list))
		return total / float64(len(list)), nil
	case "ceil", "floor":
		if i, ok := toInt64(args[0]); ok {
			return i, nil
		}
		f := args[0].(float64)
		if name == "ceil" {
			f = math.Ceil(f)
		} else {
			f = math.Floor(f)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, evalErrorf("cannot convert float infinity or NaN to integer")
		}
		if f >= -9.2e18 && f <= 9.2e18 {
			return int64(f), nil
		}
		return f, nil
	case "contains":
		if s, ok := args[0].(string); ok {
			sub, ok := args[1].(string)
			if !ok {
				return nil, evalErrorf("'in <string>' requires string as left operand, not %s", pyType(args[1]))
			}
			return strings.Contains(s, sub), nil
		}
		for _, e := range args[0].([]any) {
			if pyEqual(e, args[1], 0) {
				return true, nil
			}
		}
		return false, nil
	case "ends_with":
		return strings.HasSuffix(args[0].(string), args[1].(string)), nil
	case "starts_with":
		return strings.HasPrefix(args[0].(string), args[1].(string)), nil
	case "join":
		parts := make([]string, 0)
		for _, e := range args[1].([]any) {
			parts = append(parts, e.(string))
		}
		return strings.Join(parts, args[0].(string)), nil
	case "keys", "values":
		keys, get, _ := entries(args[0])
		out := make([]any, len(keys))
		for i, k := range keys {
			if name == "keys" {
				out[i] = k
			} else {
				out[i] = get(k)
			}
		}
		return out, nil
	case "length":
		switch t := args[0].(type) {
		case string:
			return int64(utf8.RuneCountInString(t)), nil
		case []any:
			return int64(len(t)), nil
		}
		keys, _, _ := entries(args[0])
		return int64(len(keys)), nil
	case "map":
		e := args[0].(*expref)
		out := []any{}
		for _, el := range args[1].([]any) {
			r, err := in.visit(e.n, el)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	case "max", "min":
		list := args[0].([]any)
		if len(list) == 0 {
			return nil, nil
		}
		best := list[0]
		for _, e := range list[1:] {
			c := pyCompare(e, best)
			if (name == "max" && c > 0) || (name == "min" && c < 0) {
				best = e
			}
		}
		return best, nil
	case "max_by", "min_by":
		list := args[0].([]any)
		if len(list) == 0 {
			return nil, nil
		}
		keys, err := in.keysBy(name, list, args[1].(*expref), false)
		if err != nil {
			return nil, err
		}
		best := 0
		for i := 1; i < len(list); i++ {
			if jmesType(keys[i]) != jmesType(keys[best]) {
				return nil, evalErrorf("'%s' not supported between instances of '%s' and '%s'", map[string]string{"max_by": ">", "min_by": "<"}[name], pyType(keys[i]), pyType(keys[best]))
			}
			c := pyCompare(keys[i], keys[best])
			if (name == "max_by" && c > 0) || (name == "min_by" && c < 0) {
				best = i
			}
		}
		return list[best], nil
	case "merge":
		o := NewObject()
		for _, a := range args {
			if err := dictUpdate(o, a); err != nil {
				return nil, err
			}
		}
		return o, nil
	case "not_null":
		for _, a := range args {
			if a != nil {
				return a, nil
			}
		}
		return nil, nil
	case "reverse":
		if s, ok := args[0].(string); ok {
			r := []rune(s)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			return string(r), nil
		}
		list := args[0].([]any)
		out := make([]any, len(list))
		for i, e := range list {
			out[len(list)-1-i] = e
		}
		return out, nil
	case "sort":
		out := append([]any(nil), args[0].([]any)...)
		sort.SliceStable(out, func(i, j int) bool { return pyCompare(out[i], out[j]) < 0 })
		return out, nil
	case "sort_by":
		list := args[0].([]any)
		if len(list) == 0 {
			return list, nil
		}
		keys, err := in.keysBy(name, list, args[1].(*expref), true)
		if err != nil {
			return nil, err
		}
		idx := make([]int, len(list))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return pyCompare(keys[idx[a]], keys[idx[b]]) < 0 })
		out := make([]any, len(list))
		for i, k := range idx {
			out[i] = list[k]
		}
		return out, nil
	case "sum":
		return sum(args[0].([]any)), nil
	case "to_array":
		if l, ok := args[0].([]any); ok {
			return l, nil
		}
		return []any{args[0]}, nil
	case "to_number":
		return toNumber(args[0]), nil
	case "to_string":
		if s, ok := args[0].(string); ok {
			return s, nil
		}
		return MarshalPython(args[0])
	case "type":
		return jmesType(args[0]), nil
	}
	return nil, evalErrorf("unknown function: %s()", name)
}

// dictUpdate is Python's dict.update(v), which merge() runs on every
// argument: an object's keys and values; otherwise v is iterated (a
// list's items, a string's characters) and each item must be a pair: a
// list of two, a string of two characters, an object of two keys.
func dictUpdate(o *Object, v any) error {
	if keys, get, ok := entries(v); ok {
		for _, k := range keys {
			o.Set(k, get(k))
		}
		return nil
	}
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case string:
		for _, r := range t {
			items = append(items, string(r))
		}
	default:
		return evalErrorf("'%s' object is not iterable", pyType(v))
	}
	for i, item := range items {
		pair, err := updatePair(item, i)
		if err != nil {
			return err
		}
		k, ok := pair[0].(string)
		if !ok {
			if t := pyType(pair[0]); t == "list" || t == "dict" {
				return evalErrorf("unhashable type: '%s'", t)
			}
			return &EvalError{Msg: fmt.Sprintf("merge() got a key of type %s: Python keeps it, pgsvc's objects have string keys only", jmesType(pair[0])), Unmodelled: true}
		}
		o.Set(k, pair[1])
	}
	return nil
}

// updatePair is item i of a sequence given to dict.update as the pair
// (key, value) Python takes from it.
func updatePair(item any, i int) ([2]any, error) {
	var seq []any
	switch t := item.(type) {
	case []any:
		seq = t
	case string:
		for _, r := range t {
			seq = append(seq, string(r))
		}
	default:
		keys, _, ok := entries(item)
		if !ok {
			return [2]any{}, evalErrorf("cannot convert dictionary update sequence element #%d to a sequence", i)
		}
		for _, k := range keys {
			seq = append(seq, k)
		}
	}
	if len(seq) != 2 {
		return [2]any{}, evalErrorf("dictionary update sequence element #%d has length %d; 2 is required", i, len(seq))
	}
	return [2]any{seq[0], seq[1]}, nil
}

// keysBy evaluates the key expression of max_by, min_by and sort_by on
// each element: numbers or strings only; sort_by requires the type of the
// first element's key throughout.
func (in *interp) keysBy(name string, list []any, e *expref, sameAsFirst bool) ([]any, error) {
	keys := make([]any, len(list))
	for i, el := range list {
		k, err := in.visit(e.n, el)
		if err != nil {
			return nil, err
		}
		t := jmesType(k)
		if t != "number" && t != "string" {
			return nil, evalErrorf("%s() got keys of type %s, expected number or string", name, t)
		}
		if sameAsFirst && i > 0 && t != jmesType(keys[0]) {
			return nil, evalErrorf("%s() got keys of types %s and %s, expected one type", name, jmesType(keys[0]), t)
		}
		keys[i] = k
	}
	return keys, nil
}

// pyCompare orders two numbers or two strings (callers check the types).
func pyCompare(a, b any) int {
	if as, ok := a.(string); ok {
		bs, _ := b.(string)
		return compareStrings(as, bs)
	}
	af, _ := number(a)
	bf, _ := number(b)
	return compareNumbers(a, b, af, bf)
}

// sum is Python's sum(): an int while every item is an int.
func sum(list []any) any {
	var i int64
	var f float64
	isFloat := false
	for _, e := range list {
		if n, ok := toInt64(e); ok && !isFloat {
			if (n > 0 && i > math.MaxInt64-n) || (n < 0 && i < math.MinInt64-n) {
				f, isFloat = float64(i)+float64(n), true
				continue
			}
			i += n
			continue
		}
		if !isFloat {
			f, isFloat = float64(i), true
		}
		v, _ := number(e)
		f += v
	}
	if isFloat {
		return f
	}
	return i
}

// toNumber is Python jmespath's to_number: numbers as they are; strings
// through int() when they hold no '.', else float(), so surrounding
// whitespace, '+', '_' between digits, "inf" and "nan" are read as Python
// reads them; anything else null.
func toNumber(v any) any {
	switch t := v.(type) {
	case int, int64, float64:
		return t
	case string:
		if !strings.Contains(t, ".") {
			if n, ok := pythonInt(t); ok {
				return n
			}
		}
		if f, ok := pythonFloatParse(t); ok {
			return f
		}
	}
	return nil
}

func pyStrip(s string) string { return strings.TrimSpace(s) }

// pythonInt is int(s) for a str: optional sign, decimal digits with single
// underscores between them, surrounding whitespace.
func pythonInt(s string) (int64, bool) {
	s = pyStrip(s)
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || !underscoredDigits(body, "0123456789") {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	return n, err == nil
}

func underscoredDigits(s, digits string) bool {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return false
	}
	return strings.Trim(s, digits+"_") == ""
}

// pythonFloatParse is float(s) for a str.
func pythonFloatParse(s string) (float64, bool) {
	s = pyStrip(s)
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 {
		return 0, false
	}
	switch strings.ToLower(body) {
	case "inf", "infinity", "nan":
		f, _ := strconv.ParseFloat(s, 64)
		return f, true
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(body), "e")
	if hasExp {
		e := strings.TrimLeft(exp, "+-")
		if len(exp)-len(e) > 1 || !underscoredDigits(e, "0123456789") {
			return 0, false
		}
	}
	ip, fp, _ := strings.Cut(mant, ".")
	if ip == "" && fp == "" {
		return 0, false
	}
	if (ip != "" && !underscoredDigits(ip, "0123456789")) || (fp != "" && !underscoredDigits(fp, "0123456789")) {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		return 0, false
	}
	return f, true
}

// typeCheck is Python jmespath's argument check: the value's type must be
// one of t ("any" when t is empty); for array-number and array-string
// every element must match, all of one kind.
func typeCheck(fn string, v any, t argType) error {
	if len(t) == 0 {
		return nil
	}
	actual := jmesType(v)
	for _, want := range t {
		base, sub, isArrayOf := strings.Cut(want, "-")
		if !isArrayOf {
			if actual == want {
				return nil
			}
			continue
		}
		list, ok := v.([]any)
		if base != "array" || !ok {
			continue
		}
		if len(list) == 0 {
			return nil
		}
		if jmesType(list[0]) != sub {
			continue
		}
		for _, e := range list {
			if jmesType(e) != sub {
				return evalErrorf("%s() got an array holding %s, expected %s", fn, withArticle(jmesType(e)), strings.Join(t, " or "))
			}
		}
		return nil
	}
	return evalErrorf("%s() got %s, expected %s", fn, withArticle(actual), strings.Join(t, " or "))
}

func withArticle(typ string) string {
	switch typ {
	case "null":
		return "null"
	case "array", "object", "expref":
		return "an " + typ
	}
	return "a " + typ
}
