-- A pending webhook message's body, compressed (zstd). A backlog pends bodies at tens of MB a
-- second, and PostgreSQL took about 25 ns a byte to keep them (TOAST chunks, their index, the
-- WAL): the deliverer spent half its time there. Rows pended before this migration keep
-- their body in the text column (packed is NULL).

-- +goose Up
ALTER TABLE webhook_pending ADD COLUMN packed BYTEA;

-- +goose Down
ALTER TABLE webhook_pending DROP COLUMN packed;
