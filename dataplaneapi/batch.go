package dataplaneapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// client-native opens one stats-socket connection per command and cannot
// send several over one: a mass event (every cluster switching at once,
// some 9,000 commands) then costs seconds of connection setup alone. Batch
// sends a pass's commands over one connection in HAProxy's interactive
// mode, where every reply ends with the prompt: each reply is then known
// to be whole, and a reply cut short (connection closed, deadline) is an
// error naming how far HAProxy got, never an empty success.

// cliPrompt ends every reply in interactive mode.
const cliPrompt = "\n> "

// batchPreamble enters interactive mode and asks for numbered severities
// on errors ("[3]: ..."), as client-native does, so CheckReply reads both
// transports' replies alike.
var batchPreamble = []string{"prompt", "set severity-output number"}

// BatchError is a batch that stopped part-way: the first Answered lines
// were answered; whether HAProxy ran the others is unknown (they were
// sent, and may have run with their replies lost).
type BatchError struct {
	Socket   string
	Answered int
	Lines    []string
	Err      error
}

func (e *BatchError) Error() string {
	if e.Answered < len(e.Lines) {
		return fmt.Sprintf("haproxy socket %s: reply %d of %d (%q) not received, so whether HAProxy ran it and the %d after it is unknown: %v",
			e.Socket, e.Answered+1, len(e.Lines), e.Lines[e.Answered], len(e.Lines)-e.Answered-1, e.Err)
	}
	return fmt.Sprintf("haproxy socket %s: %v", e.Socket, e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// Batch sends lines, in order, over one connection and returns one reply
// per line (without the prompt). On error the replies received before it
// are returned with a *BatchError.
func (r *Runtime) Batch(ctx context.Context, lines []string) ([]string, error) {
	for _, l := range lines {
		if l == "" || strings.ContainsAny(l, ";\n") {
			return nil, fmt.Errorf("haproxy socket %s: refusing to send %q: one command per line, no ';'", r.socket, l)
		}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	fail := func(replies []string, err error) ([]string, error) {
		return replies, &BatchError{Socket: r.socket, Answered: len(replies), Lines: lines, Err: err}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", r.socket)
	if err != nil {
		return fail(nil, err)
	}
	defer conn.Close()
	// As client-native's transport, never wait forever on a stuck HAProxy.
	deadline := time.Now().Add(batchTimeout)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	// A cancelled ctx unblocks the reads and writes below at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// HAProxy answers while it reads: writing everything before reading
	// would deadlock once both socket buffers are full.
	go func() { // ends with conn, at the latest

		w := bufio.NewWriterSize(conn, 64<<10)
		for _, l := range batchPreamble {
			w.WriteString(l + "\n")
		}
		for _, l := range lines {
			w.WriteString(l + "\n")
		}
		w.WriteString("quit\n")
		_ = w.Flush() // a write that fails shows as a missing reply
	}()

	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), maxReply)
	sc.Split(replySplitter())
	replies := make([]string, 0, len(lines))
	for i := 0; i < len(batchPreamble)+len(lines); i++ {
		if !sc.Scan() {
			err := sc.Err()
			if err == nil {
				err = errors.New("connection closed before the reply ended")
			}
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
			return fail(replies, err)
		}
		if i < len(batchPreamble) {
			if got := strings.TrimSpace(sc.Text()); got != "" {
				return fail(nil, fmt.Errorf("%q answered %q", batchPreamble[i], firstLine(got)))
			}
			continue
		}
		replies = append(replies, sc.Text())
	}
	return replies, nil
}

// batchTimeout bounds a batch whose context has no deadline.
const batchTimeout = 30 * time.Second

// maxReply bounds one reply: `show stat` of 32,000 servers is ~8 MB.
const maxReply = 256 << 20

// replySplitter cuts the stream at each prompt; data left at the end
// without one is a reply cut short. It remembers how far it searched, so
// a reply of megabytes arriving in pieces is scanned once.
func replySplitter() bufio.SplitFunc {
	searched := 0 // of the data the scanner hands back until a token is cut
	return func(data []byte, atEOF bool) (int, []byte, error) {
		from := max(0, min(searched, len(data))-len(cliPrompt)+1)
		if i := bytes.Index(data[from:], []byte(cliPrompt)); i >= 0 {
			searched = 0
			return from + i + len(cliPrompt), data[:from+i], nil
		}
		searched = len(data)
		if atEOF && len(data) > 0 {
			return 0, nil, fmt.Errorf("reply cut short after %d bytes (no prompt)", len(data))
		}
		return 0, nil, nil
	}
}
