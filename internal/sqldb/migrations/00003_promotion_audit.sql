-- Who changed a promotion, and when (design §11, audit): the last change on the row, and
-- every change in promotion_changes. "By" is the API key's name ("" with access control off).

-- +goose Up
ALTER TABLE promotions ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE promotions ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
CREATE TABLE promotion_changes (
    promotion_id TEXT   NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    at_ms        BIGINT NOT NULL,
    by_key       TEXT   NOT NULL,
    action       TEXT   NOT NULL CHECK (action IN ('create', 'update', 'stop'))
);
CREATE INDEX promotion_changes_of ON promotion_changes (promotion_id, at_ms);

-- +goose Down
DROP TABLE promotion_changes;
ALTER TABLE promotions DROP COLUMN updated_by;
ALTER TABLE promotions DROP COLUMN created_by;
