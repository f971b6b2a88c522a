-- Held reservations and load marks in the durable copy (design §8): the projector keeps them
-- from the notes of the changes it projects (inventory.Note), and `jaego restore` brings them
-- back. The ledger keeps each change's note too, so a restore writes it back into the feed.

-- +goose Up
ALTER TABLE stock_ledger ADD COLUMN note TEXT NOT NULL DEFAULT '';
CREATE TABLE stock_reservations (
    id         TEXT   PRIMARY KEY,
    store      TEXT   NOT NULL,
    status     TEXT   NOT NULL CHECK (status IN ('held', 'confirmed', 'cancelled', 'expired')),
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX stock_reservations_ended ON stock_reservations (status, updated_ms);
CREATE TABLE stock_reservation_items (
    id         TEXT   NOT NULL,
    created_ms BIGINT NOT NULL, -- of the hold: an id held again (after its keep) is another basket
    sku        TEXT   NOT NULL,
    qty        BIGINT NOT NULL,
    PRIMARY KEY (id, created_ms, sku)
);
CREATE TABLE stock_load_marks (
    grp     INTEGER NOT NULL, -- the shard group
    load_id TEXT    NOT NULL,
    line    BIGINT  NOT NULL, -- the last line of the load applied in the group
    at_ms   BIGINT  NOT NULL, -- when that line was applied (the mark expires a window later)
    PRIMARY KEY (grp, load_id)
);

-- +goose Down
DROP TABLE stock_load_marks;
DROP TABLE stock_reservation_items;
DROP TABLE stock_reservations;
ALTER TABLE stock_ledger DROP COLUMN note;
