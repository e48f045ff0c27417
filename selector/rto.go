package selector

import (
	"fmt"
	"strconv"
)

// defaultRTOPlan is Pigsty v4's pg_rto_plan:
// [ttl, loop, retry, start, margin, inter, fastinter, downinter, rise, fall].
func defaultRTOPlan() map[string]any {
	row := func(v ...any) []any { return v }
	return map[string]any{
		"fast": row(20.0, 5.0, 5.0, 15.0, 5.0, "1s", "0.5s", "1s", 3.0, 3.0),
		"norm": row(30.0, 5.0, 10.0, 25.0, 5.0, "2s", "1s", "2s", 3.0, 3.0),
		"safe": row(60.0, 10.0, 20.0, 45.0, 10.0, "3s", "1.5s", "3s", 3.0, 3.0),
		"wide": row(120.0, 20.0, 30.0, 95.0, 15.0, "4s", "2s", "4s", 3.0, 3.0),
	}
}

// rtoOptions is the default-server line a v2 service gets without `options`,
// as each Pigsty era's template renders it:
//   - neither pg_rto nor pg_rto_plan set, or pg_rto a number (v2/v3, where
//     pg_rto was a TTL the template ignored) without pg_rto_plan: the seed line;
//   - otherwise the pg_rto_plan row named by pg_rto, falling back to norm
//     (v4: `pg_rto if pg_rto in pg_rto_plan else 'norm'`); with pg_rto unset,
//     v4's role default pg_rto: norm applies, so a custom plan's norm row.
//
// Errors are about the cluster's variables and name their lines.
func (b *serviceBuilder) rtoOptions() (string, error) {
	rto, set := b.cfg.Vars["pg_rto"]
	set = set && rto != nil
	customPlan, hasPlan := b.cfg.Vars["pg_rto_plan"]
	hasPlan = hasPlan && customPlan != nil
	if !set {
		if !hasPlan {
			return SeedServerOptions, nil
		}
		rto = "norm"
	}
	name, named := rto.(string)
	if !named && !hasPlan {
		return SeedServerOptions, nil
	}
	plan := defaultRTOPlan()
	if hasPlan {
		pm, ok := mapping(customPlan)
		if !ok {
			return "", inputErrorf("%s: pg_rto_plan must be a mapping of plans, got %s", b.cfgAt("pg_rto_plan"), describe(customPlan))
		}
		plan = pm
	}
	row, ok := plan[name]
	if !ok {
		row, ok = plan["norm"]
		if !ok {
			if !set {
				return "", inputErrorf("%s: pg_rto_plan has no norm plan, which applies when pg_rto is unset", b.cfgAt("pg_rto_plan"))
			}
			return "", inputErrorf("%s: pg_rto %s is not in pg_rto_plan, which has no norm plan either", b.cfgAt("pg_rto"), describe(rto))
		}
		name = "norm"
	}
	cells, ok := row.([]any)
	if !ok || len(cells) != 10 {
		return "", inputErrorf("%s: pg_rto_plan.%s must be a list of 10 values [ttl, loop, retry, start, margin, inter, fastinter, downinter, rise, fall]", b.cfgAt("pg_rto_plan"), name)
	}
	f := make([]string, 5)
	for i, c := range cells[5:] {
		s, err := durationCell(c)
		if err != nil {
			return "", inputErrorf("%s: pg_rto_plan.%s[%d]: %v", b.cfgAt("pg_rto_plan"), name, i+5, err)
		}
		f[i] = s
	}
	return fmt.Sprintf("inter %s fastinter %s downinter %s rise %s fall %s on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100",
		f[0], f[1], f[2], f[3], f[4]), nil
}

func durationCell(v any) (string, error) {
	switch t := v.(type) {
	case string:
		if t == "" {
			return "", fmt.Errorf("empty value")
		}
		return t, nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%s is not a time or count", describe(v))
}
