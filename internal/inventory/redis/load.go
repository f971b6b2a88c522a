package redis

import (
	"context"
	"strconv"

	"github.com/jaego/jaego/internal/inventory"
)

var _ inventory.Loader = (*Store)(nil)

// Load implements inventory.Loader with the apply script (its 'load' rows): the rows of one
// shard group go in one script call, so the load's mark of a group (the last line applied,
// <prefix>:load:{g}:<load id>, kept as long as idempotency marks) only ever moves past rows
// that were applied with it.
func (s *Store) Load(ctx context.Context, loadID string, rows []inventory.LoadRow) ([]inventory.Result, error) {
	ops := make([]op, len(rows))
	for i, r := range rows {
		o := op{eventID: loadID + "-" + strconv.FormatInt(r.Line, 10), typ: "load", qty: r.OnHand,
			store: r.Store, sku: r.SKU, mark: strconv.FormatInt(r.Line, 10), loadID: loadID}
		if r.Safety != nil {
			o.expected = strconv.FormatInt(*r.Safety, 10)
		}
		ops[i] = o
	}
	out, err := s.exec(ctx, ops, len(rows))
	if err != nil {
		return nil, err
	}
	results := make([]inventory.Result, len(rows))
	for i, r := range out {
		results[i] = inventory.Result{EventID: ops[i].eventID, Status: inventory.Status(r.status), Stock: r.stock}
		if r.status == string(inventory.Rejected) {
			results[i].Err = r.err()
		}
		s.metrics.events.WithLabelValues("load", r.status).Inc()
	}
	return results, nil
}
