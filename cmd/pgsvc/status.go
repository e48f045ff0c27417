package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/pgsvc/pgsvc/dataplaneapi"
	"github.com/pgsvc/pgsvc/reconcile"
)

func runStatus(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	var fleetView bool
	var format string
	fs := newFlags("status", "status --inventory FILE [flags] | status --fleet [-o text|json] [flags]", errOut)
	fs.BoolVar(&fleetView, "fleet", false, "every pgsvc agent registered in etcd: what it serves and applied, its readiness (no --inventory needed)")
	fs.StringVar(&format, "o", "text", "output `format` of --fleet: text or json")
	if hasFlag(args, "fleet") && !hasFlag(args, "inventory") {
		cfg.Inventory = "-" // not needed for the fleet view
	}
	if err := parseDaemonFlags(fs, args, &cfg); err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return fmt.Errorf("-o %q: want text or json", format)
	}
	if fleetView {
		return runFleetStatus(ctx, cfg, format, out)
	}
	return withLive(ctx, cfg, func(ctx context.Context, l *live) error {
		in, err := l.inputs(ctx)
		if err != nil {
			return err
		}
		desired, err := reconcile.DesiredNow(in)
		if err != nil {
			return err
		}
		rt, err := dataplaneapi.NewRuntime(ctx, cfg.Socket)
		if err != nil {
			return err
		}
		return writeStatus(ctx, out, desired, rt)
	})
}

// writeStatus prints desired against HAProxy's state, server by server.
func writeStatus(ctx context.Context, out io.Writer, desired reconcile.Desired, rt *dataplaneapi.Runtime) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSERVER\tADDRESS\tROLE\tDESIRED\tHAPROXY\tSTATUS\tWEIGHT\t")
	drift := 0
	for i := range desired.Services {
		s := &desired.Services[i]
		actual, err := rt.Backend(ctx, s.Name)
		if errors.Is(err, dataplaneapi.ErrNoBackend) {
			fmt.Fprintf(tw, "%s\t-\t%s\t-\t-\tmissing (reload pending)\t-\t-\t\n", s.Name, s.Bind())
			drift++
			continue
		}
		if err != nil {
			return err
		}
		for _, sv := range s.Servers {
			got, status, weight := slotSummary(sv, actual)
			want := sv.Slot.String()
			if got != want || weight != sv.Weight {
				drift++
				got += " *"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\t%s w%d\t%s\t%s\tw%d\t\n", s.Name, sv.Name, sv.Host, sv.Port, sv.Role, want, sv.Weight, got, status, weight)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if drift > 0 {
		fmt.Fprintf(out, "%d servers differ from the desired state (*): pgsvc run converges them; pgsvc reconcile --dry-run shows how\n", drift)
	}
	return writeHeld(ctx, out, desired, rt)
}

// writeHeld names the services whose frontends hold new connections
// (maxconn 0: a switchover in progress, or a hold left behind).
func writeHeld(ctx context.Context, out io.Writer, desired reconcile.Desired, rt *dataplaneapi.Runtime) error {
	replies, err := rt.Batch(ctx, []string{dataplaneapi.FrontendsLine})
	if err != nil {
		return err
	}
	fe, err := dataplaneapi.ParseFrontends(replies[0])
	if err != nil {
		return err
	}
	for i := range desired.Services {
		s := &desired.Services[i]
		if f, ok := fe[s.Name]; ok && f.Maxconn == 0 {
			fmt.Fprintf(out, "%s: new connections held (frontend maxconn 0, configured %d): a switchover is in progress, or pgsvc left the hold behind (pgsvc reconcile releases it)\n", s.Name, s.Maxconn)
		}
	}
	return nil
}

// slotSummary says which slot of a member HAProxy has enabled.
func slotSummary(sv reconcile.Server, b dataplaneapi.BackendState) (slot, status string, weight int) {
	var on []string
	for _, backup := range []bool{false, true} {
		st, ok := b.Slots[dataplaneapi.SlotName(sv.Name, backup)]
		if !ok {
			return "no slot", "-", 0
		}
		if st.Admin == dataplaneapi.AdminReady {
			on = append(on, map[bool]string{false: "active", true: "backup"}[backup])
			status, weight = st.Status, st.UWeight
		} else if status == "" {
			status, weight = st.Admin.String(), st.UWeight
		}
	}
	sort.Strings(on)
	switch len(on) {
	case 0:
		return "out", status, weight
	case 1:
		return on[0], status, weight
	}
	return strings.Join(on, "+"), status, weight
}
