-- The store directory (design §15): where each store is and what it can do. It is the
-- durable side of the directory: PUT /v1/admin/stores writes here first, then to Redis's
-- geo index, which `jaego restore` (and each start of jaego serve) fills from here.

-- +goose Up
CREATE TABLE stores (
    id           TEXT             PRIMARY KEY,
    name         TEXT             NOT NULL,
    lat          DOUBLE PRECISION NOT NULL,
    lon          DOUBLE PRECISION NOT NULL,
    capabilities TEXT             NOT NULL, -- sorted, comma-separated
    status       TEXT             NOT NULL CHECK (status IN ('open', 'closed')),
    updated_ms   BIGINT           NOT NULL
);

-- +goose Down
DROP TABLE stores;
