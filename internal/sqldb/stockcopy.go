package sqldb

import (
	"github.com/pressly/goose/v3"
)

// stockCopyMigration (version 2) makes the durable stock copy of design §8: a Go migration,
// because the ledger is partitioned by day on PostgreSQL (one partition a day, dropped
// whole after the retention) and a plain table on the SQLite of jaego dev.
//
//	stock_copy              current stock per store × SKU, with its version
//	stock_ledger            every change projected, by store × SKU and version
//	stock_projection        one row: the feed cursor the copy holds, the projector's fencing
//	                        token, the time up to which the copy is complete, a change count
//	stock_kafka_offsets     the lowest and highest Kafka offset projected per partition (restores)
func stockCopyMigration(postgres bool) *goose.Migration {
	ledger := `CREATE TABLE stock_ledger (
    at_ms           BIGINT  NOT NULL,
    change_id       TEXT    NOT NULL,
    store           TEXT    NOT NULL,
    sku             TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    delta           BIGINT  NOT NULL,
    on_hand         BIGINT  NOT NULL,
    reserved        BIGINT  NOT NULL,
    safety          BIGINT  NOT NULL,
    version         BIGINT  NOT NULL,
    event_id        TEXT    NOT NULL,
    kafka_partition INTEGER,
    kafka_offset    BIGINT,
    id_ms           BIGINT  NOT NULL, -- the change id (ms-seq) as numbers, for id order
    id_seq          BIGINT  NOT NULL,
    PRIMARY KEY (store, sku, version, at_ms)
)`
	if postgres {
		ledger += " PARTITION BY RANGE (at_ms)"
	}
	up := []string{
		`CREATE TABLE stock_copy (
    store         TEXT   NOT NULL,
    sku           TEXT   NOT NULL,
    on_hand       BIGINT NOT NULL,
    reserved      BIGINT NOT NULL,
    safety        BIGINT NOT NULL,
    version       BIGINT NOT NULL CHECK (version >= 1),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (store, sku)
)`,
		ledger,
		`CREATE INDEX stock_ledger_at ON stock_ledger (at_ms)`,
		`CREATE INDEX stock_ledger_id ON stock_ledger (id_ms, id_seq, change_id)`,
		`CREATE TABLE stock_projection (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    cursor     TEXT    NOT NULL,
    token      BIGINT  NOT NULL,
    as_of_ms   BIGINT  NOT NULL,
    changes    BIGINT  NOT NULL
)`,
		`CREATE TABLE stock_kafka_offsets (
    kafka_partition INTEGER PRIMARY KEY,
    first_offset    BIGINT  NOT NULL,
    kafka_offset    BIGINT  NOT NULL
)`,
	}
	down := []string{"DROP TABLE stock_kafka_offsets", "DROP TABLE stock_projection", "DROP TABLE stock_ledger", "DROP TABLE stock_copy"}
	return goose.NewGoMigration(2, runStatements(up), runStatements(down))
}
