package sqldb

import (
	"context"
	"database/sql"

	"github.com/pressly/goose/v3"
)

// webhookRowsMigration (version 8) drops the foreign keys of webhook_pending and
// webhook_deliveries on PostgreSQL. They are written a row a message, always in a
// transaction that has just locked the subscription's row and checked its grant (a deleted
// subscription's writes roll back), and PostgreSQL ran a key check for every row: without
// them PostgreSQL's share of a batch-100 backlog fell from 0.12–0.14 to 0.08 of a core
// (docs/benchmarks.md, "Webhooks"). Deleting a subscription deletes its rows in the same
// transaction (webhook/db.Store.Delete). SQLite keeps them: jaego dev's keys cost little,
// and dropping one there means rebuilding the table.
func webhookRowsMigration(postgres bool) *goose.Migration {
	var up, down []string
	if postgres {
		up = []string{
			`ALTER TABLE webhook_pending DROP CONSTRAINT IF EXISTS webhook_pending_webhook_id_fkey`,
			`ALTER TABLE webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_webhook_id_fkey`,
		}
		down = []string{
			`ALTER TABLE webhook_pending ADD CONSTRAINT webhook_pending_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE`,
			`ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE`,
		}
	}
	return goose.NewGoMigration(8, runStatements(up), runStatements(down))
}

// runStatements is a Go migration step that runs stmts in its transaction.
func runStatements(stmts []string) *goose.GoFunc {
	return &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}}
}
