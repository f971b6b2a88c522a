package redis

import (
	"strings"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/inventory"
)

// Redis and its scripts answer errors as text; this file is the one place that reads them,
// at the adapter's edge, and turns each into what it means to the rest of jaego.

// lostPrefix starts the error_reply of a script refused for want of its group's epoch mark
// (common.lua's require_epoch).
const lostPrefix = "REDISLOST"

// scriptError is what an error of a script call means: the script's REDISLOST refusal is
// inventory.ErrLost (Redis lost its data); anything else is the store unavailable for op.
func (s *Store) scriptError(op string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), lostPrefix) {
		return inventory.ErrLost
	}
	return s.unavailable(op, err)
}

// idTaken reports whether err is XADD refusing an id at or below the stream's top: the
// entry a restore wanted to write is there already.
func idTaken(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.Contains(re.Error(), "equal or smaller than the target stream top item")
}
