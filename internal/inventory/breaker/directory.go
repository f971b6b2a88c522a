package breaker

import (
	"context"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
)

// Directory is the store directory of the request paths (design §15): Redis's geo index
// behind the breaker and, with a durable copy, the SQL directory, written first (so that
// a restore brings back every store) and read while Redis does not answer.
type Directory struct {
	primary sourcing.Directory
	copy    sourcing.Directory // nil: no fallback
	b       *Breaker
}

var _ sourcing.Directory = (*Directory)(nil)

// NewDirectory guards primary with b, copy (which may be nil) its durable side.
func NewDirectory(primary, copy sourcing.Directory, b *Breaker) *Directory {
	return &Directory{primary: primary, copy: copy, b: b}
}

// Put implements sourcing.Directory: the copy, then Redis. A Put that fails after the
// copy took it is answered as failed; putting the store again (or a restore) mends it.
func (d *Directory) Put(ctx context.Context, s sourcing.Store) error {
	if d.copy != nil {
		if err := d.copy.Put(ctx, s); err != nil {
			return err
		}
	}
	_, err := Call(d.b, func() (struct{}, error) { return struct{}{}, d.primary.Put(ctx, s) })
	return err
}

// Get implements sourcing.Directory.
func (d *Directory) Get(ctx context.Context, id string) (sourcing.Store, error) {
	return read(ctx, d, func(dir sourcing.Directory) (sourcing.Store, error) { return dir.Get(ctx, id) })
}

// Near implements sourcing.Directory.
func (d *Directory) Near(ctx context.Context, lat, lon, radiusKm float64, limit int) ([]sourcing.Near, error) {
	return read(ctx, d, func(dir sourcing.Directory) ([]sourcing.Near, error) { return dir.Near(ctx, lat, lon, radiusKm, limit) })
}

// read asks Redis through the breaker, and the copy when Redis did not answer (the
// breaker open or lost, a failure, Redis without its data).
func read[T any](ctx context.Context, d *Directory, f func(sourcing.Directory) (T, error)) (T, error) {
	v, err := Call(d.b, func() (T, error) { return f(d.primary) })
	if err == nil || d.copy == nil || ctx.Err() != nil {
		return v, err
	}
	switch jaego.CodeOf(err) {
	case jaego.CodeNotFound, jaego.CodeInvalid:
		return v, err
	}
	return f(d.copy)
}

// Sagas are the sourcing holds' records behind the breaker.
type Sagas struct {
	primary sourcing.Sagas
	b       *Breaker
}

var _ sourcing.Sagas = (*Sagas)(nil)

// NewSagas guards primary with b.
func NewSagas(primary sourcing.Sagas, b *Breaker) *Sagas { return &Sagas{primary: primary, b: b} }

// Begin implements sourcing.Sagas.
func (s *Sagas) Begin(ctx context.Context, id string, until time.Time, block int) (sourcing.Begun, error) {
	return Call(s.b, func() (sourcing.Begun, error) { return s.primary.Begin(ctx, id, until, block) })
}

// Finish implements sourcing.Sagas.
func (s *Sagas) Finish(ctx context.Context, id, token string, held bool, plan []byte) (bool, error) {
	return Call(s.b, func() (bool, error) { return s.primary.Finish(ctx, id, token, held, plan) })
}
