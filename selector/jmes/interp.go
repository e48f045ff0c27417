package jmes

import (
	"fmt"
	"math"
)

// Expr is a compiled expression.
type Expr struct {
	src  string
	root *node
}

// Compile parses src as Python jmespath 1.0.1 does.
func Compile(src string) (*Expr, error) {
	root, err := parse(src)
	if err != nil {
		return nil, err
	}
	return &Expr{src: src, root: root}, nil
}

// String is the expression's source.
func (e *Expr) String() string { return e.src }

// EvalError is what Python raises while evaluating: a type error in a
// function or a comparison, a wrong number of arguments, an unknown
// function. Its message names types and functions, never data values.
// Unmodelled marks the rare input Python answers but pgsvc does not
// model (an object key that is not a string): an error all the same,
// never a different answer, but not one Python raised.
type EvalError struct {
	Msg        string
	Unmodelled bool
}

func (e *EvalError) Error() string { return e.Msg }

func evalErrorf(f string, a ...any) error { return &EvalError{Msg: fmt.Sprintf(f, a...)} }

// Search evaluates e over data: nil, bool, int/int64 (Python's int),
// float64, string, []any, *Object or map[string]any (keys sorted where
// order shows). Objects it builds are *Object.
func (e *Expr) Search(data any) (any, error) {
	in := &interp{}
	return in.visit(e.root, data)
}

type interp struct{ depth int }

// expref is an expression reference (&expr), a function argument.
type expref struct{ n *node }

func (in *interp) visit(n *node, v any) (any, error) {
	if in.depth++; in.depth > maxDepth {
		return nil, evalErrorf("maximum recursion depth exceeded")
	}
	defer func() { in.depth-- }()
	switch n.kind {
	case nField:
		switch t := v.(type) {
		case *Object:
			r, _ := t.Get(n.name)
			return r, nil
		case map[string]any:
			return t[n.name], nil
		}
		return nil, nil
	case nSubexpression, nIndexExpression, nPipe:
		// Python's visit_subexpression goes on after a null: a field or
		// index of null is null, but a function still runs on it
		// (`missing.type(@)` is "null", `missing.length(@)` raises).
		r := v
		for _, c := range n.children {
			var err error
			if r, err = in.visit(c, r); err != nil {
				return nil, err
			}
		}
		return r, nil
	case nIndex:
		list, ok := v.([]any)
		if !ok {
			return nil, nil
		}
		i := n.value.(int64)
		if i < 0 {
			i += int64(len(list))
		}
		if i < 0 || i >= int64(len(list)) {
			return nil, nil
		}
		return list[i], nil
	case nSlice:
		list, ok := v.([]any)
		if !ok {
			return nil, nil
		}
		return pySlice(list, n.slice)
	case nProjection:
		list, ok, err := in.list(n.children[0], v)
		if !ok || err != nil {
			return nil, err
		}
		return in.project(list, n.children[1])
	case nValueProjection:
		base, err := in.visit(n.children[0], v)
		if err != nil {
			return nil, err
		}
		keys, get, ok := entries(base)
		if !ok {
			return nil, nil
		}
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = get(k)
		}
		return in.project(vals, n.children[1])
	case nFilterProjection:
		list, ok, err := in.list(n.children[0], v)
		if !ok || err != nil {
			return nil, err
		}
		out := []any{}
		for _, e := range list {
			c, err := in.visit(n.children[2], e)
			if err != nil {
				return nil, err
			}
			if isFalse(c) {
				continue
			}
			r, err := in.visit(n.children[1], e)
			if err != nil {
				return nil, err
			}
			if r != nil {
				out = append(out, r)
			}
		}
		return out, nil
	case nFlatten:
		list, ok, err := in.list(n.children[0], v)
		if !ok || err != nil {
			return nil, err
		}
		out := []any{}
		for _, e := range list {
			if inner, ok := e.([]any); ok {
				out = append(out, inner...)
			} else {
				out = append(out, e)
			}
		}
		return out, nil
	case nIdentity, nCurrent:
		return v, nil
	case nLiteral:
		return n.value, nil
	case nMultiSelectList:
		if v == nil {
			return nil, nil
		}
		out := make([]any, 0, len(n.children))
		for _, c := range n.children {
			r, err := in.visit(c, v)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	case nMultiSelectDict:
		if v == nil {
			return nil, nil
		}
		o := NewObject()
		for _, c := range n.children {
			r, err := in.visit(c, v)
			if err != nil {
				return nil, err
			}
			o.Set(c.name, r)
		}
		return o, nil
	case nKeyValPair:
		return in.visit(n.children[0], v)
	case nComparator:
		return in.compare(n, v)
	case nOr, nAnd:
		l, err := in.visit(n.children[0], v)
		if err != nil {
			return nil, err
		}
		if isFalse(l) == (n.kind == nOr) {
			return in.visit(n.children[1], v)
		}
		return l, nil
	case nNot:
		r, err := in.visit(n.children[0], v)
		if err != nil {
			return nil, err
		}
		if f, ok := number(r); ok && f == 0 {
			return false, nil // 0 is true in JMESPath, so !0 is false
		}
		return pythonFalsy(r), nil
	case nFunction:
		args := make([]any, len(n.children))
		for i, c := range n.children {
			var err error
			if args[i], err = in.visit(c, v); err != nil {
				return nil, err
			}
		}
		return in.call(n.name, args)
	case nExpref:
		return &expref{n: n.children[0]}, nil
	}
	return nil, evalErrorf("unknown node")
}

// list evaluates n over v: the list it yields, or false when it is none.
func (in *interp) list(n *node, v any) ([]any, bool, error) {
	base, err := in.visit(n, v)
	if err != nil {
		return nil, false, err
	}
	l, ok := base.([]any)
	return l, ok, nil
}

func (in *interp) project(list []any, rhs *node) (any, error) {
	out := []any{}
	for _, e := range list {
		r, err := in.visit(rhs, e)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// isFalse is JMESPath's falsiness as Python jmespath tests it: "", [],
// {}, null and false; numbers (0 included) are true.
func isFalse(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case string:
		return t == ""
	case []any:
		return len(t) == 0
	case *Object:
		return t.Len() == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

// pythonFalsy is Python's `not v` for the values an expression yields.
func pythonFalsy(v any) bool {
	if f, ok := number(v); ok {
		return f == 0
	}
	return isFalse(v)
}

// number is v as a float when it is a number (not a bool).
func number(v any) (float64, bool) {
	switch t := v.(type) {
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case float64:
		return t, true
	}
	return 0, false
}

func (in *interp) compare(n *node, v any) (any, error) {
	l, err := in.visit(n.children[0], v)
	if err != nil {
		return nil, err
	}
	r, err := in.visit(n.children[1], v)
	if err != nil {
		return nil, err
	}
	switch n.name {
	case "eq":
		return equalTop(l, r), nil
	case "ne":
		return !equalTop(l, r), nil
	}
	ls, lstr := l.(string)
	rs, rstr := r.(string)
	lf, lnum := number(l)
	rf, rnum := number(r)
	if !(lstr || lnum) || !(rstr || rnum) {
		return nil, nil // only numbers and strings order; anything else is null
	}
	var c int
	switch {
	case lnum && rnum:
		c = compareNumbers(l, r, lf, rf)
		if math.IsNaN(lf) || math.IsNaN(rf) {
			return false, nil
		}
	case lstr && rstr:
		c = compareStrings(ls, rs)
	default:
		return nil, evalErrorf("'%s' not supported between instances of '%s' and '%s'", opSymbol(n.name), pyType(l), pyType(r))
	}
	switch n.name {
	case "lt":
		return c < 0, nil
	case "lte":
		return c <= 0, nil
	case "gt":
		return c > 0, nil
	}
	return c >= 0, nil
}

func opSymbol(name string) string {
	return map[string]string{"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[name]
}

// compareNumbers orders two numbers; two integers exactly.
func compareNumbers(l, r any, lf, rf float64) int {
	li, lint := toInt64(l)
	ri, rint := toInt64(r)
	if lint && rint {
		return cmp3(li < ri, li > ri)
	}
	return cmp3(lf < rf, lf > rf)
}

func compareStrings(a, b string) int { return cmp3(a < b, a > b) } // UTF-8 byte order is code point order

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func toInt64(v any) (int64, bool) {
	switch t := v.(type) {
	case int:
		return int64(t), true
	case int64:
		return t, true
	}
	return 0, false
}

// equalTop is `==` in an expression: Python's ==, except that 0 and 1 are
// not equal to false and true at the top level (jmespath's special case).
func equalTop(a, b any) bool {
	if f, ok := number(a); ok && (f == 0 || f == 1) {
		if _, isBool := b.(bool); isBool {
			return false
		}
	}
	if f, ok := number(b); ok && (f == 0 || f == 1) {
		if _, isBool := a.(bool); isBool {
			return false
		}
	}
	return pyEqual(a, b, 0)
}

// pyEqual is Python's ==: numbers by value (1 == 1.0, and 1 == True inside
// containers), lists element-wise, objects by keys and values.
func pyEqual(a, b any, depth int) bool {
	if depth > maxDepth {
		return false
	}
	if fa, ok := pyNumber(a); ok {
		fb, ok := pyNumber(b)
		if !ok {
			return false
		}
		ia, aint := toIntLike(a)
		ib, bint := toIntLike(b)
		if aint && bint {
			return ia == ib
		}
		return fa == fb
	}
	switch t := a.(type) {
	case nil:
		return b == nil
	case string:
		s, ok := b.(string)
		return ok && s == t
	case []any:
		u, ok := b.([]any)
		if !ok || len(u) != len(t) {
			return false
		}
		for i := range t {
			if !pyEqual(t[i], u[i], depth+1) {
				return false
			}
		}
		return true
	case *expref:
		u, ok := b.(*expref)
		return ok && u == t
	}
	ka, ga, ok := entries(a)
	if !ok {
		return false
	}
	kb, gb, ok := entries(b)
	if !ok || len(ka) != len(kb) {
		return false
	}
	inB := make(map[string]bool, len(kb))
	for _, k := range kb {
		inB[k] = true
	}
	for _, k := range ka {
		if !inB[k] || !pyEqual(ga(k), gb(k), depth+1) {
			return false
		}
	}
	return true
}

// pyNumber is v as a Python number: bools are 0 and 1 (Python's bool is
// an int).
func pyNumber(v any) (float64, bool) {
	if b, ok := v.(bool); ok {
		if b {
			return 1, true
		}
		return 0, true
	}
	return number(v)
}

func toIntLike(v any) (int64, bool) {
	if b, ok := v.(bool); ok {
		if b {
			return 1, true
		}
		return 0, true
	}
	return toInt64(v)
}

// pySlice is Python's list[start:stop:step].
func pySlice(list []any, parts [3]*int64) (any, error) {
	n := int64(len(list))
	step := int64(1)
	if parts[2] != nil {
		step = *parts[2]
	}
	if step == 0 {
		return nil, evalErrorf("slice step cannot be zero")
	}
	bound := func(p *int64, def int64) int64 {
		if p == nil {
			return def
		}
		i := *p
		if i < 0 {
			i += n
			if i < 0 {
				if step < 0 {
					return -1
				}
				return 0
			}
		}
		if i >= n {
			if step < 0 {
				return n - 1
			}
			return n
		}
		return i
	}
	var start, stop int64
	if step > 0 {
		start, stop = bound(parts[0], 0), bound(parts[1], n)
	} else {
		start, stop = bound(parts[0], n-1), bound(parts[1], -1)
	}
	out := []any{}
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		out = append(out, list[i])
	}
	return out, nil
}

// pyType is the Python type name a value has in Pigsty's hostvars.
func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int, int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case *expref:
		return "_Expression"
	}
	return "dict"
}

// jmesType is JMESPath's type name of v.
func jmesType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int, int64, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case *expref:
		return "expref"
	}
	return "object"
}
