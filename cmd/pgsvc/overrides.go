package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgsvc/pgsvc/reconcile"
)

func runSet(ctx context.Context, args []string, out, errOut io.Writer) error {
	return changeOverride(ctx, "set", args, out, errOut)
}

func runUnset(ctx context.Context, args []string, out, errOut io.Writer) error {
	return changeOverride(ctx, "unset", args, out, errOut)
}

// changeOverride implements `pgsvc set <instance> key=value...` and
// `pgsvc unset <instance> key...`: the instance and values are checked
// against the inventory before anything is written.
func changeOverride(ctx context.Context, verb string, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	synopsis := "set <instance> key=value... --inventory FILE [--wait] [flags]"
	if verb == "unset" {
		synopsis = "unset <instance> key... --inventory FILE [--wait] [flags]"
	}
	fs := newFlags(verb, synopsis, errOut)
	var wait bool
	fs.BoolVar(&wait, "wait", false, "wait until every HAProxy serving the instance's cluster applied it (each agent is printed as it confirms; --timeout bounds the wait)")
	flags, positional := splitPositional(args)
	if err := parseDaemonFlags(fs, flags, &cfg); err != nil {
		return err
	}
	if len(positional) < 2 {
		return fmt.Errorf("usage: pgsvc %s", synopsis)
	}
	inst, rest := positional[0], positional[1:]
	var set map[string]any
	var unset []string
	var err error
	if verb == "set" {
		if set, err = reconcile.ParseAssignments(rest); err != nil {
			return fmt.Errorf("%s: %w", inst, err)
		}
	} else {
		unset = rest
	}
	return withLive(ctx, cfg, func(ctx context.Context, l *live) error {
		vars, rev, err := reconcile.UpdateOverride(ctx, l.cli, cfg.layout(), l.model, inst, set, unset)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s\n", inst, formatVars(vars))
		if !wait {
			return nil
		}
		c, err := reconcile.Instance(l.model, inst)
		if err != nil {
			return err
		}
		return waitApplied(ctx, l.cli, cfg, c.Name, rev, out)
	})
}

func runOverrides(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg := defaultConfig()
	cfg.Inventory = "-" // not needed to list
	fs := newFlags("overrides", "overrides [flags]", errOut)
	if err := parseDaemonFlags(fs, args, &cfg); err != nil {
		return err
	}
	return withEtcd(ctx, cfg, func(ctx context.Context, cli *clientv3.Client) error {
		names, all, err := reconcile.ListOverrides(ctx, cli, cfg.layout())
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintln(out, "no overrides")
			return nil
		}
		for _, n := range names {
			fmt.Fprintf(out, "%s: %s\n", n, formatVars(all[n]))
		}
		return nil
	})
}

func formatVars(vars map[string]any) string {
	if len(vars) == 0 {
		return "(no overrides)"
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, vars[k])
	}
	return strings.Join(parts, " ")
}

// splitPositional separates flags (and their values) from positional
// arguments, so `pgsvc set pg-test-3 x=1 --inventory f` works in any order.
func splitPositional(args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		if !strings.Contains(a, "=") && i+1 < len(args) && takesValue(a) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, positional
}

func takesValue(flag string) bool {
	switch strings.TrimLeft(flag, "-") {
	case "help", "h", "wait", "force": // booleans
		return false
	}
	return true
}
