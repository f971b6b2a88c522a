package main

import (
	"context"
	"net/http"
	"time"

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory/breaker"
	"github.com/jaego/jaego/internal/sourcing"
	srcdb "github.com/jaego/jaego/internal/sourcing/db"
	srchttp "github.com/jaego/jaego/internal/sourcing/http"
	srcredis "github.com/jaego/jaego/internal/sourcing/redis"
)

// sourcingKeep is how long a sourcing hold's record is kept: as long as its parts'
// reservations (the idempotency TTL).
const sourcingKeep = 7 * 24 * time.Hour

// stores is the store directory and sourcing part of a server (design §15).
type stores struct {
	redis     *srcredis.Directory
	sql       *srcdb.Directory // nil without a durable copy
	directory *breaker.Directory
	sourcer   *sourcing.Sourcer
}

// addSourcing makes the store directory — Redis's geo index behind the breaker and, with a
// durable copy, the SQL directory written first and read while Redis does not answer — and
// the sourcer on the guarded stock and reservations.
func (s *server) addSourcing(client rueidis.Client) {
	b := s.guarded.Breaker()
	st := &stores{redis: srcredis.New(client, s.stock.Keys(), s.sql != nil, sourcingKeep)}
	var copy sourcing.Directory
	if s.sql != nil {
		st.sql = srcdb.New(s.sql)
		copy = st.sql
	}
	st.directory = breaker.NewDirectory(st.redis, copy, b)
	st.sourcer = sourcing.New(sourcing.Options{Directory: st.directory, Stock: s.guarded, Reservations: s.reservations,
		Sagas: breaker.NewSagas(st.redis, b), CallBound: s.cfg.RequestTimeout + 5*time.Second, Registerer: s.registry, Logger: s.log})
	s.sourcing = st
}

// syncDirectory puts every store of the SQL directory in Redis's geo index: each start
// mends a Put that reached only the copy. A Redis that lost its data waits for jaego
// restore, which does the same. It answers how many stores the SQL directory holds.
func (s *server) syncDirectory(ctx context.Context) int {
	if s.sourcing.sql == nil {
		return 0
	}
	all, err := s.sourcing.sql.All(ctx)
	if err == nil {
		err = s.sourcing.redis.PutMany(ctx, all)
	}
	if err != nil {
		s.log.Warn("store directory not copied to Redis at startup; jaego restore (or a restart) does it", "err", err)
		return len(all)
	}
	s.log.Info("store directory copied to Redis", "stores", len(all))
	return len(all)
}

// registerSourcing adds the directory and sourcing routes; a hold needs the write scope.
func (s *server) registerSourcing(mux httpx.Mux) {
	o := srchttp.Options{Timeout: s.cfg.RequestTimeout, Logger: s.log}
	if !s.guard.Open() {
		o.CanHold = func(r *http.Request) error { return s.guard.Require(r, auth.Write) }
	}
	srchttp.New(s.sourcing.directory, s.sourcing.sourcer, o).Register(mux)
}
