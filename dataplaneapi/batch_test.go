package dataplaneapi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One connection, one reply per command, in order: empty successes,
// numbered refusals and multi-line dumps each end where the next begins.
func TestBatchRepliesInOrder(t *testing.T) {
	_, sy, s := socketLab(t)
	ctx := context.Background()
	lines := []string{
		"set server " + s.Name + "/pg-test-2 weight 42",
		"set server " + s.Name + "/pg-none weight 1",
		"show servers state " + s.Name,
		"set server " + s.Name + "/pg-test-2 weight abc",
		"show env PGSVC_FINGERPRINT",
		"set server " + s.Name + "/pg-test-3 weight 43",
	}
	replies, err := sy.Runtime.Batch(ctx, lines)
	require.NoError(t, err)
	require.Len(t, replies, len(lines))
	assert.Empty(t, strings.TrimSpace(replies[0]))
	assert.True(t, strings.HasPrefix(replies[1], "[3]: "), "numbered severity, as client-native asks for: %q", replies[1])
	slots, err := ParseServersState(replies[2])
	require.NoError(t, err, "a whole dump")
	assert.Equal(t, 42, slots["pg-test-2"].UWeight, "the first command ran before the dump")
	assert.Equal(t, 100, slots["pg-test-3"].UWeight, "the last one after it")
	assert.Contains(t, replies[3], "[3]: ")
	assert.True(t, strings.HasPrefix(replies[4], "PGSVC_FINGERPRINT="), "%q", replies[4])
	assert.Empty(t, strings.TrimSpace(replies[5]))

	b, err := sy.Runtime.Backend(ctx, s.Name)
	require.NoError(t, err)
	assert.Equal(t, 43, b.Slots["pg-test-3"].UWeight)

	_, err = sy.Runtime.Batch(ctx, []string{"show info;show env"})
	assert.ErrorContains(t, err, "one command per line, no ';'")
}

// A cancelled context ends the batch at once, and the error says how far
// HAProxy got: the answered commands ran, the next one's outcome is
// unknown (it may have run), never "failed".
func TestBatchCancelledSaysWhatIsUnknown(t *testing.T) {
	_, sy, s := socketLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lines := []string{"set server " + s.Name + "/pg-test-2 weight 42"}
	_, err := sy.Runtime.Batch(ctx, lines)
	var be *BatchError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 0, be.Answered)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), `reply 1 of 1 ("set server pg-test-replica/pg-test-2 weight 42") not received, so whether HAProxy ran it and the 0 after it is unknown`)
}

// A reply that ends without the prompt (the connection closed mid-dump)
// is an error, not a short success. HAProxy cannot be made to close a
// connection mid-reply on cue, so a fake socket plays that part.
func TestBatchCutReplyIsAnError(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Read everything first: closing with unread input resets
				// the connection, and the client would see that instead.
				in := bufio.NewScanner(c)
				for in.Scan() && in.Text() != "quit" {
				}
				// prompt, severity-output, one whole reply, then half a dump.
				_, _ = c.Write([]byte("\n> \n> \n> 1\n# be_id be_name\n5 pg-test-replica 1 pg-test-1"))
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt := &Runtime{socket: sock} // Batch needs no client-native client
	replies, err := rt.Batch(ctx, []string{"set server b/s weight 1", "show servers state"})
	var be *BatchError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 1, be.Answered)
	assert.Len(t, replies, 1)
	assert.Contains(t, err.Error(), "reply cut short after")
	assert.False(t, errors.Is(err, context.Canceled))
}

// The reply splitter finds a prompt split across reads, and only there.
func TestReplySplitter(t *testing.T) {
	split := replySplitter()
	adv, tok, err := split([]byte("abc\n"), false)
	require.NoError(t, err)
	assert.Zero(t, adv)
	assert.Nil(t, tok)
	adv, tok, err = split([]byte("abc\n> def"), false)
	require.NoError(t, err)
	assert.Equal(t, 6, adv)
	assert.Equal(t, "abc", string(tok))
	_, _, err = split([]byte("def"), true)
	assert.ErrorContains(t, err, "reply cut short after 3 bytes")
}
