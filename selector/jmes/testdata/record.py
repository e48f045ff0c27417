#!/usr/bin/python3
# Records Python jmespath 1.0.1's answer for every case below (Debian's
# python3-jmespath; run with /usr/bin/python3 record.py). The Go tests read
# python-1.0.1.json and need no Python. Each case: expression, input JSON
# (decoded with order kept), and either the result as
# json.dumps(separators=(',', ':')) or the class of what Python raised and
# whether it raised compiling or searching.
import json, os, sys
import jmespath

assert jmespath.__version__ == "1.0.1", jmespath.__version__

HOSTS = json.dumps([
    {"inventory_hostname": "10.10.10.11", "pg_cluster": "pg-test", "pg_seq": 1, "pg_role": "primary", "pg_weight": 100, "group_names": ["pg-test"]},
    {"inventory_hostname": "10.10.10.12", "pg_cluster": "pg-test", "pg_seq": 2, "pg_role": "replica", "pg_weight": 50.0, "pg_tag": "b&c", "group_names": ["infra", "pg-test"]},
    {"inventory_hostname": "10.10.10.13", "pg_cluster": "pg-test", "pg_seq": 3, "pg_role": "offline", "pg_offline_query": True, "pg_tag": "a", "group_names": ["pg-test"]},
    {"inventory_hostname": "10.10.10.2", "pg_cluster": "pg-test", "pg_seq": "4", "pg_role": "replica", "pg_weight": 0, "group_names": ["pg-test"]},
])
DOC = json.dumps({"z": 1, "a": [1, 2, 3, 4, 5], "m": {"y": "Y", "b": "B", "é": "\u00e9"}, "s": "hello", "n": None,
                  "t": True, "f": False, "e": "", "l": [], "o": {}, "num": 2.5, "neg": -3, "zero": 0, "one": 1,
                  "mixed": [1, "a", None, True, [2], {"k": 3}], "nested": [[1, [2]], [3], 4], "strs": ["b", "a", "C"],
                  "objs": [{"k": 2, "v": "x"}, {"k": 1, "v": "y"}, {"k": 2, "v": "z"}], "big": 9007199254740993,
                  "pad": " 42 ", "us": "1_000", "flt": "1e3", "plus": "+5", "inf": "inf", "dot": "4.", "amp": "a&b<c>"})

EXPRS_DOC = r"""
z
a
a[0]
a[-1]
a[10]
a[1:3]
a[::-1]
a[::2]
a[-2:]
a[:-10]
a[5:1:-1]
a[::0]
s[0]
s[0:2]
m.y
m.*
m.* | [0]
*
keys(@)
values(@)
keys(m)
values(m)
merge(m, `{"b": 1, "new": 2}`)
merge(`{}`)
merge()
{b: z, a: s}
{b: z, a: s}.*
values({b: z, a: s})
keys({b: z, a: s, b: t})
[z, s, n]
n.[a, b]
n.{a: a}
mixed[]
nested[]
nested[][]
a[?@ > `2`]
a[?@ > `2.5`]
strs[?@ > 'a']
strs[?@ >= 'b']
strs[?@ < 'b']
mixed[?@ > `0`]
a[?@ > 'a']
s > 'h'
s < 'h'
num > `2`
z == `1.0`
z == `true`
one == `true`
zero == `false`
[one] == [`true`]
`[1]` == `[true]`
{a: one} == `{"a": true}`
`{"a": 1}` == `{"a": 1.0}`
t == `true`
n == `null`
e == ''
l == `[]`
o == `{}`
s != 'hello'
a < a
n < `1`
t < `1`
`"a"` < `"b"`
`"é"` > `"z"`
!zero
!one
!e
!l
!o
!n
!t
!s
!num
zero || 'x'
e || 'x'
l || 'x'
zero && 'x'
e && 'x'
n || n
abs(neg)
abs(num)
abs(s)
abs(t)
avg(a)
avg(l)
avg(strs)
ceil(num)
floor(num)
ceil(z)
floor(neg)
contains(a, `3`)
contains(a, `3.0`)
contains(mixed, `true`)
contains(`[1]`, `true`)
contains(`[true]`, `1`)
contains(`[0]`, `false`)
contains(s, 'ell')
contains(s, `1`)
contains(mixed, `[2]`)
contains(mixed, `{"k": 3}`)
contains(n, 'a')
ends_with(s, 'lo')
starts_with(s, 'he')
starts_with(s, `1`)
join(', ', strs)
join(', ', a)
join(', ', l)
length(s)
length(m.é)
length(a)
length(m)
length(z)
map(&k, objs)
map(&missing, objs)
map(&@, a)
max(a)
max(strs)
max(l)
max(mixed)
min(a)
min(strs)
max_by(objs, &k)
min_by(objs, &k)
max_by(objs, &v)
max_by(objs, &missing)
min_by(l, &k)
not_null(n, e, z)
not_null(n, n)
not_null()
reverse(a)
reverse(s)
reverse(m)
sort(strs)
sort(a)
sort(mixed)
sort(l)
sort_by(objs, &k)
sort_by(objs, &v)
sort_by(objs, &missing)
sort_by(mixed, &@)
sum(a)
sum(`[1, 2.5]`)
sum(l)
sum(strs)
to_array(z)
to_array(a)
to_array(n)
to_number(pad)
to_number(us)
to_number(flt)
to_number(plus)
to_number(inf)
to_number(dot)
to_number(s)
to_number(t)
to_number(num)
to_number('0x10')
to_number(' 1.5 ')
to_number('1__0')
to_number('')
to_string(num)
to_string(z)
to_string(`50.0`)
to_string(`1e16`)
to_string(`1e-5`)
to_string(`0.0001`)
to_string(`123456789.0`)
to_string(`1.5e300`)
to_string(m)
to_string(amp)
to_string({a: amp})
to_string(`["é"]`)
to_string(n)
to_string(t)
to_string(mixed)
to_string(big)
type(z)
type(num)
type(s)
type(t)
type(n)
type(a)
type(m)
unknown(z)
length(s, s)
length()
values(a)
keys(s)
`primary`
` primary`
`{"b": 1, "a": 2}`
`{"b": 1, "a": 2}`.*
keys(`{"b": 1, "a": 2, "b": 3}`)
'raw\'quote'
"quoted"
"m"."y"
"a"(s)
a[
a.[
[?
@
@.z
&z
z.&z
foo.bar.baz
a[0].b
objs[*].k
objs[].k
objs[?k == `2`].v
objs[?k == `2`] | [0].v
objs[*].[k, v]
objs[*].{v: v, k: k}
objs[0:2].v
*.k
m.*.x
a[*]
[*]
a || s
a && s
(z)
(a)[0]
"\u00e9"
`"\u00e9"`
z.y
a.b
a[0][0]
a[0:1][0]
s.length(@)
missing.length(@)
n.length(@)
missing.to_string(@)
missing.type(@)
missing.not_null(@, 'y')
missing.to_array(@)
missing.to_number(@)
missing.y.type(@)
missing[0].type(@)
a[10].type(@)
missing.[@]
missing.{k: @}
missing[*].type(@)
missing.sort_by(@, &k)
missing.keys(@)
m.missing.merge(@)
objs[].missing.type(@)
objs[*].k.to_string(@)
a[?missing.type(@) == 'null']
missing.length(@) || 'x'
missing.type(@).length(@)
z.type(@)
merge(`{}`, `1`)
merge(`{}`, n)
merge(`{}`, t)
merge(`{}`, `[]`)
merge(`{}`, l)
merge(`{}`, `[["a", 1], ["b", 2], ["a", 3]]`)
merge(`{}`, `["ab"]`)
merge(`{}`, `["\u00e9x"]`)
merge(`{}`, 'ab')
merge(`{}`, '')
merge(`{}`, s)
merge(`{}`, a)
merge(`{}`, `[{"x": 1, "y": 2}]`)
merge(`{}`, `[{"x": 1}]`)
merge(`{}`, `[["a"]]`)
merge(`{}`, `[[["a"], 1]]`)
merge(`{}`, `[[{"a": 1}, 1]]`)
merge(`{}`, `[1]`)
merge(`{}`, `[null]`)
merge(m, `{"b": 1}`, `[["y", 2]]`, `{"z": 3}`)
merge(`1`, `{}`)
merge(n)
merge(l)
merge(objs[0], objs[1])
not_null(n, `1`)
"""

EXPRS_HOSTS = r"""
[? pg_role == 'primary' ]
[? pg_role == `primary` ]
[? pg_role == 'replica' && !pg_offline_query ] || [? pg_role == 'primary' ]
[]
[? pg_weight > `50` ]
[? pg_weight >= `50` ]
[? pg_seq > `1` ]
[? pg_seq > '1' ]
[? inventory_hostname > '10.10.10.11' ]
[? inventory_hostname < '10.10.10.13' ]
[? pg_tag > 'a' ]
[? pg_tag >= 'a' ]
sort_by(@, &pg_seq)[0]
sort_by(@, &inventory_hostname)
sort_by(@, &pg_weight)
reverse(sort_by(@, &inventory_hostname))
[?contains(keys(@), 'pg_offline_query')]
[?contains(group_names, 'infra')]
[? pg_offline_query ]
[? !pg_offline_query ]
[? pg_weight ]
[? pg_seq == to_number('2') ]
[? pg_seq == to_number(' 2 ') ]
[? to_string(pg_weight) == '50.0' ]
[? to_string(pg_weight) == '100' ]
[? to_string(pg_seq) == '4' ]
[? to_string({t: pg_tag}) == '{"t":"b&c"}' ]
[? contains([`true`], pg_seq) ]
[? contains([`1`, `3`], pg_seq) ]
values({z: [? pg_seq == `3` ], a: [? pg_seq == `2` ]})[]
{z: [? pg_seq == `3` ], a: [? pg_seq == `2` ]}.*[]
[? pg_role == 'replica' ] | [:1]
[? pg_role == 'replica' ] | [-1]
[*].inventory_hostname
[].pg_seq
max_by(@, &pg_seq)
max_by(@, &inventory_hostname)
min_by(@, &pg_weight)
[? starts_with(inventory_hostname, '10.10.10.1') ]
[? length(group_names) > `1` ]
[? type(pg_seq) == 'string' ]
[? pg_weight == `100.0` ]
[? pg_weight == `50` ]
[? pg_weight == `0` ]
[? pg_weight == `false` ]
map(&pg_seq, @)
sort(map(&inventory_hostname, @))
[? pg_cluster == 'pg-test' ] | length(@)
[0:2]
[::-1]
[? pg_tag.length(@) ]
[? missing.type(@) ]
[? missing.type(@) == 'null' ]
[? pg_tag.to_string(@) == 'null' ]
[? pg_offline_query.not_null(@, `false`) ]
[? pg_tag.not_null(@, 'z') == 'z' ]
[? missing.length(@) > `0` ]
[*].pg_tag.type(@)
[? merge(`{}`, @).pg_seq == `1` ]
[? merge(`{"w": 1}`, `[["pg_weight", 7]]`).pg_weight == `7` ]
"""

def run(expr, doc):
    case = {"expr": expr, "input": doc}
    try:
        compiled = jmespath.compile(expr)
    except Exception as e:
        case["error"], case["phase"] = type(e).__name__, "compile"
        return case
    try:
        r = compiled.search(json.loads(doc))
    except Exception as e:
        case["error"], case["phase"] = type(e).__name__, "search"
        return case
    try:
        case["result"] = json.dumps(r, separators=(",", ":"))
    except Exception as e:  # a result that is no JSON (an expression reference)
        case["error"], case["phase"] = type(e).__name__, "dump"
    return case

cases = []
for block, doc in ((EXPRS_DOC, DOC), (EXPRS_HOSTS, HOSTS)):
    for line in block.strip("\n").split("\n"):
        cases.append(run(line, doc))
# Every comparator with every pair of types.
values = ['`1`', '`1.5`', '`0`', "'a'", "'b'", '`true`', '`false`', '`null`', '`[1]`', '`{"a":1}`', "''", '`[]`']
for op in ["==", "!=", "<", "<=", ">", ">="]:
    for l in values:
        for r in values:
            cases.append(run("%s %s %s" % (l, op, r), "{}"))
os.chdir(os.path.dirname(os.path.abspath(__file__)))
json.dump({"recorded_with": "python3-jmespath " + jmespath.__version__ + ", python " + sys.version.split()[0],
           "cases": cases}, open("python-1.0.1.json", "w"), indent=0, ensure_ascii=False)
open("python-1.0.1.json", "a").write("\n")
print(len(cases), "cases")
