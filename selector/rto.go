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

// rtoOptions is the default-server line a v2 service gets without `options`:
// the seed line unless the inventory sets pg_rto, then the pg_rto_plan row
// (Pigsty v4). A plan name that is not in the plan falls back to norm, and a
// number of seconds maps to the closest plan, as Pigsty documents.
func (b *serviceBuilder) rtoOptions(at string) (string, error) {
	rto, ok := b.cfg.Vars["pg_rto"]
	if !ok || rto == nil {
		return SeedServerOptions, nil
	}
	plan := defaultRTOPlan()
	if p, ok := b.cfg.Vars["pg_rto_plan"]; ok && p != nil {
		pm, ok := p.(map[string]any)
		if !ok {
			return "", inputErrorf("%s: pg_rto_plan must be a mapping of plans, got %s", at, describe(p))
		}
		plan = pm
	}
	name := "norm"
	switch t := rto.(type) {
	case string:
		name = t
	case float64:
		name = planForSeconds(t)
	}
	row, ok := plan[name]
	if !ok {
		row, ok = plan["norm"]
		if !ok {
			return "", inputErrorf("%s: pg_rto %s is not in pg_rto_plan, which has no norm plan either", at, describe(rto))
		}
		name = "norm"
	}
	cells, ok := row.([]any)
	if !ok || len(cells) != 10 {
		return "", inputErrorf("%s: pg_rto_plan.%s must be a list of 10 values [ttl, loop, retry, start, margin, inter, fastinter, downinter, rise, fall]", at, name)
	}
	f := make([]string, 5)
	for i, c := range cells[5:] {
		s, err := durationCell(c)
		if err != nil {
			return "", inputErrorf("%s: pg_rto_plan.%s[%d]: %v", at, name, i+5, err)
		}
		f[i] = s
	}
	return fmt.Sprintf("inter %s fastinter %s downinter %s rise %s fall %s on-marked-down shutdown-sessions slowstart 30s maxconn 3000 maxqueue 128 weight 100",
		f[0], f[1], f[2], f[3], f[4]), nil
}

func planForSeconds(s float64) string {
	switch {
	case s < 30:
		return "fast"
	case s < 45:
		return "norm"
	case s < 90:
		return "safe"
	default:
		return "wide"
	}
}

func durationCell(v any) (string, error) {
	switch t := v.(type) {
	case string:
		if t == "" {
			return "", fmt.Errorf("empty value")
		}
		return t, nil
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%s is not a time or count", describe(v))
}
