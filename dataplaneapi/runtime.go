package dataplaneapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cnruntime "github.com/haproxytech/client-native/v5/runtime"
	cnoptions "github.com/haproxytech/client-native/v5/runtime/options"
)

// Runtime talks to one HAProxy through its stats socket (client-native v5;
// the master socket does not work with it on 2.6). One per process.
type Runtime struct {
	socket string
	rt     cnruntime.Runtime
	life   context.Context // client-native stops serving when it ends
}

// NewRuntime connects lazily: HAProxy need not be up yet. ctx must live as
// long as the Runtime (client-native's socket goroutine ends with it).
func NewRuntime(ctx context.Context, socket string) (*Runtime, error) {
	rt, err := cnruntime.New(ctx, cnoptions.Socket(socket), cnoptions.DoNotCheckRuntimeOnInit)
	if err != nil {
		return nil, fmt.Errorf("haproxy socket %s: %w", socket, err)
	}
	return &Runtime{socket: socket, rt: rt, life: ctx}, nil
}

// Socket is the stats socket path.
func (r *Runtime) Socket() string { return r.socket }

// Execute sends one command through client-native and returns HAProxy's
// reply. client-native has no context; a cancelled ctx returns at once
// while the reply is discarded. Its transport ends a reply at any read
// error or its own deadline and reports it whole, so a reply that decides
// anything goes over Batch (prompt-delimited: a cut reply is an error)
// instead; Execute is for replies nothing depends on.
func (r *Runtime) Execute(ctx context.Context, command string) (string, error) {
	type result struct {
		out []string
		err error
	}
	if err := r.life.Err(); err != nil {
		return "", fmt.Errorf("haproxy socket %s: client closed: %w", r.socket, err)
	}
	done := make(chan result, 1)
	go func() {
		out, err := r.rt.ExecuteRaw(command)
		done <- result{out, err}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-r.life.Done():
		return "", fmt.Errorf("haproxy socket %s: client closed: %w", r.socket, r.life.Err())
	case res := <-done:
		if res.err != nil {
			return "", fmt.Errorf("haproxy socket %s: %q: %w", r.socket, command, res.err)
		}
		if len(res.out) == 0 {
			return "", fmt.Errorf("haproxy socket %s: %q: no reply", r.socket, command)
		}
		return res.out[0], nil
	}
}

// Show sends one read-only command over Batch and returns its whole reply:
// for replies that decide something (which worker runs, what config it
// loaded), which client-native's transport may hand back cut short.
func (r *Runtime) Show(ctx context.Context, command string) (string, error) {
	replies, err := r.Batch(ctx, []string{command})
	if err != nil {
		return "", err
	}
	return replies[0], nil
}

// ErrNoBackend is returned for a backend HAProxy does not have.
var ErrNoBackend = errors.New("no such backend")

// Backend reads a backend's servers: admin state, address, ports and user
// weight from `show servers state`, status and backup flag from `show stat`.
func (r *Runtime) Backend(ctx context.Context, name string) (BackendState, error) {
	states, err := r.Backends(ctx, []string{name})
	if err != nil {
		return BackendState{}, err
	}
	st, ok := states[name]
	if !ok {
		return BackendState{}, fmt.Errorf("haproxy backend %s: %w", name, ErrNoBackend)
	}
	return st, nil
}

// Backends reads the named backends over one connection (two commands
// each). A backend HAProxy does not have is absent from the result.
func (r *Runtime) Backends(ctx context.Context, names []string) (map[string]BackendState, error) {
	replies, err := r.Batch(ctx, backendLines(names))
	if err != nil {
		return nil, err
	}
	return parseBackends(names, replies)
}

// backendLines are the commands that read the named backends.
func backendLines(names []string) []string {
	lines := make([]string, 0, 2*len(names))
	for _, n := range names {
		lines = append(lines, "show servers state "+n, "show stat "+n+" 4 -1")
	}
	return lines
}

// parseBackends parses the replies to backendLines(names).
func parseBackends(names, replies []string) (map[string]BackendState, error) {
	out := make(map[string]BackendState, len(names))
	for i, name := range names {
		state, stat := replies[2*i], replies[2*i+1]
		if strings.HasPrefix(state, "[") && strings.Contains(state, "Can't find backend") {
			continue
		}
		slots, err := ParseServersState(state)
		if err != nil {
			return nil, fmt.Errorf("haproxy backend %s: %w", name, err)
		}
		if err := ParseStat(stat, slots); err != nil {
			return nil, fmt.Errorf("haproxy backend %s: %w", name, err)
		}
		out[name] = BackendState{Name: name, Slots: slots}
	}
	return out, nil
}

// AllBackends reads every backend in two commands over one connection; a
// full pass over thousands of services then costs one round trip, not two
// per service.
func (r *Runtime) AllBackends(ctx context.Context) (map[string]BackendState, error) {
	replies, err := r.Batch(ctx, []string{"show servers state", "show stat -1 4 -1"})
	if err != nil {
		return nil, err
	}
	all, err := ParseAllServersState(replies[0])
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	if err := ParseAllStat(replies[1], all); err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	res := make(map[string]BackendState, len(all))
	for name, slots := range all {
		res[name] = BackendState{Name: name, Slots: slots}
	}
	return res, nil
}

// ServersState reads every backend's servers from `show servers state`
// alone: admin and operational state, address, ports, weight and checks,
// but neither backup flags nor sessions (show stat's: Sessions is -1). A third of the
// bytes, and a fraction of HAProxy's time, of AllBackends.
func (r *Runtime) ServersState(ctx context.Context) (map[string]BackendState, error) {
	replies, err := r.Batch(ctx, []string{serversStateLine})
	if err != nil {
		return nil, err
	}
	return parseServersState(replies)
}

const serversStateLine = "show servers state"

// parseServersState parses the reply to serversStateLine.
func parseServersState(replies []string) (map[string]BackendState, error) {
	all, err := ParseAllServersState(replies[0])
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	res := make(map[string]BackendState, len(all))
	for name, slots := range all {
		res[name] = BackendState{Name: name, Slots: slots}
	}
	return res, nil
}

// ApplyAll sends the commands over one connection, then the reads, and
// checks each command's reply: errs[i] is command i's refusal (a
// *RefusedError) or nil; reads holds the reads' replies. A batch that
// stopped part-way returns the verdicts so far (errs shorter than cmds,
// reads nil) and a *BatchError: the first command without a reply may or
// may not have run.
func (r *Runtime) ApplyAll(ctx context.Context, cmds []Command, reads []string) (errs []error, readReplies []string, err error) {
	lines := make([]string, len(cmds), len(cmds)+len(reads))
	for i, c := range cmds {
		lines[i] = c.Line
	}
	replies, err := r.Batch(ctx, append(lines, reads...))
	n := min(len(replies), len(cmds))
	errs = make([]error, n)
	for i, reply := range replies[:n] {
		errs[i] = CheckReply(cmds[i], reply)
	}
	if err != nil {
		return errs, nil, err
	}
	return errs, replies[len(cmds):], nil
}

// RefusedError is a command HAProxy answered with a refusal: the socket
// works, the command does not (for this server or this HAProxy).
type RefusedError struct {
	Command string
	Reply   string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("haproxy refused %q: %s", e.Command, e.Reply)
}

// CheckReply decides whether a runtime reply means the command worked.
func CheckReply(c Command, reply string) error {
	reply = strings.TrimSpace(reply)
	if reply == "" {
		return nil
	}
	if c.Kind == "addr" && strings.HasPrefix(reply, "[4]:") &&
		(strings.Contains(reply, "changed from") || strings.Contains(reply, "no need to change")) {
		return nil
	}
	return &RefusedError{Command: c.Line, Reply: firstLine(reply)}
}
