-- Gift promotions (design §9). One set of migrations runs on PostgreSQL (production) and
-- on the embedded SQLite of `jaego dev`, so it keeps to SQL both accept: instants are
-- BIGINT unix milliseconds (UTC), ids are text, booleans are not used.

-- +goose Up
CREATE TABLE promotions (
    id             TEXT PRIMARY KEY,
    name           TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status         TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
    starts_at_ms   BIGINT  NOT NULL,
    ends_at_ms     BIGINT  NOT NULL,
    priority       INTEGER NOT NULL DEFAULT 0,
    min_qty        BIGINT  NOT NULL CHECK (min_qty >= 1),
    min_amount     BIGINT  NOT NULL DEFAULT 0 CHECK (min_amount >= 0),
    max_per_order  BIGINT  NOT NULL DEFAULT 0 CHECK (max_per_order >= 0),
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    CHECK (ends_at_ms > starts_at_ms)
);
-- The daily rebuild asks for the promotions whose period overlaps a day.
CREATE INDEX promotions_period ON promotions (ends_at_ms, starts_at_ms);

CREATE TABLE promotion_channels (
    promotion_id TEXT NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    channel      TEXT NOT NULL CHECK (channel IN ('online', 'store')),
    PRIMARY KEY (promotion_id, channel)
);

CREATE TABLE promotion_stores (
    promotion_id TEXT NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    store        TEXT NOT NULL CHECK (length(store) BETWEEN 1 AND 32),
    PRIMARY KEY (promotion_id, store)
);

CREATE TABLE promotion_targets (
    promotion_id TEXT NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    sku          TEXT NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    PRIMARY KEY (promotion_id, sku)
);
-- "Which promotions target this SKU" for operators; the serving path reads the cache.
CREATE INDEX promotion_targets_sku ON promotion_targets (sku);

CREATE TABLE promotion_gifts (
    promotion_id TEXT    NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL CHECK (position >= 0),
    sku          TEXT    NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    qty          BIGINT  NOT NULL CHECK (qty >= 1),
    PRIMARY KEY (promotion_id, sku),
    UNIQUE (promotion_id, position)
);

-- +goose Down
DROP TABLE promotion_gifts;
DROP TABLE promotion_targets;
DROP TABLE promotion_stores;
DROP TABLE promotion_channels;
DROP TABLE promotions;
