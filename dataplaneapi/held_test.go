package dataplaneapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A hold's worker is remembered per hold (its failover key revision): a
// new hold after the worker changed is a new hold on the new worker, not
// one "lost to a reload".
func TestHeldWorkersPerHold(t *testing.T) {
	var h heldWorkers
	w1, w2 := worker{pid: "8"}, worker{pid: "9"}
	h.keep("pg-test", 10, w1)
	h.keep("pg-test", 10, w2) // the first worker of a hold stays
	got, ok := h.get("pg-test", 10)
	assert.True(t, ok)
	assert.Equal(t, w1, got)
	_, ok = h.get("pg-test", 12)
	assert.False(t, ok, "an earlier hold's worker is none for a new hold")
	h.keep("pg-test", 12, w2)
	got, ok = h.get("pg-test", 12)
	assert.True(t, ok)
	assert.Equal(t, w2, got)
	h.forget("pg-test")
	_, ok = h.get("pg-test", 12)
	assert.False(t, ok)
}
