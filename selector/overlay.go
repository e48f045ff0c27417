package selector

// Member is what Patroni reports about one member (its members/<name> key).
type Member struct {
	Role  string // master, primary, replica, standby_leader, promoted, demoted, uninitialized
	State string // running, stopped, starting, ...
	Tags  map[string]any
	// APIURL is the member's Patroni REST API (its key's api_url), asked
	// whether a promotion has ended.
	APIURL string
}

// ClusterLive is the live view of one cluster. Leader is the member that
// routes as primary: resolved by the caller from the leader key, member roles
// and the last known leader ("" when nothing is known: static roles stand).
type ClusterLive struct {
	Leader  string
	Members map[string]Member // by member name (<cluster>-<seq>)
}

// Overrides are per-instance variables set by operators (pgsvc set), applied
// after the live view. Keyed by instance name, then variable.
type Overrides map[string]map[string]any

// Records returns the cluster members' variable records with the live view
// and overrides applied. Inventory hosts are never mutated.
//
// Rules: the leader's host becomes pg_role primary; any other host whose
// inventory role is primary becomes replica; other roles stand. Members
// present in Patroni get patroni_role, patroni_state and patroni_tags.
// Overrides come last. A member missing from the live view keeps its record.
func (c *Cluster) Records(live ClusterLive, overrides Overrides) []Record {
	leaderKnown := false
	if live.Leader != "" {
		for _, h := range c.Members {
			if InstanceName(c.Name, Seq(h.Vars)) == live.Leader {
				leaderKnown = true
				break
			}
		}
	}
	out := make([]Record, len(c.Members))
	for i, h := range c.Members {
		name := InstanceName(c.Name, Seq(h.Vars))
		m, present := live.Members[name]
		ov := overrides[name]
		if !leaderKnown && !present && len(ov) == 0 {
			out[i] = h.Vars // unchanged: share, records are read-only
			continue
		}
		r := make(Record, len(h.Vars)+3)
		for k, v := range h.Vars {
			r[k] = v
		}
		if leaderKnown {
			switch {
			case name == live.Leader:
				r["pg_role"] = "primary"
			case r["pg_role"] == "primary":
				r["pg_role"] = "replica"
			}
		}
		if present {
			r["patroni_role"] = m.Role
			r["patroni_state"] = m.State
			r["patroni_tags"] = tagsValue(m.Tags)
		}
		for k, v := range ov {
			r[k] = v
		}
		out[i] = r
	}
	return out
}

func tagsValue(t map[string]any) any {
	if t == nil {
		return map[string]any{}
	}
	return t
}
