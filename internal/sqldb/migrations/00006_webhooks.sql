-- Outbound events (design §14): webhook subscriptions, their sealed signing secrets, their
-- delivery state (position, pending messages, fencing token) and the delivery log (7 days).

-- +goose Up
CREATE TABLE webhooks (
    id              TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    events          TEXT    NOT NULL, -- sorted, comma-separated
    stores          TEXT    NOT NULL, -- sorted, comma-separated; '' is every store
    skus            TEXT    NOT NULL,
    low_stock       BIGINT  NOT NULL,
    batch           INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('active', 'paused', 'failing')),
    generation      BIGINT  NOT NULL,
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL,
    token           BIGINT  NOT NULL DEFAULT 0,  -- the fencing token of the last deliverer's claim
    position        TEXT    NOT NULL,            -- webhook.Position
    as_of_ms        BIGINT  NOT NULL DEFAULT 0,  -- when the last change passed was applied
    seq             BIGINT  NOT NULL DEFAULT 0,  -- messages formed so far
    last_success_ms BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT ''
);

-- The messages formed and not yet delivered, in order (seq): sent first, with the same ids,
-- by whichever deliverer comes next.
CREATE TABLE webhook_pending (
    webhook_id       TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    seq              BIGINT  NOT NULL,
    message_id       TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    after_position   TEXT    NOT NULL,
    first_ms         BIGINT  NOT NULL, -- when its oldest change was applied
    changes          INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_ms BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, seq)
);

CREATE TABLE webhook_secrets (
    webhook_id TEXT   NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    sealed     TEXT   NOT NULL, -- AES-GCM under the webhook key (not in the database)
    expires_ms BIGINT NOT NULL, -- 0: the current secret
    PRIMARY KEY (webhook_id, sealed)
);

CREATE TABLE webhook_deliveries (
    webhook_id  TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    at_ms       BIGINT  NOT NULL,
    message_id  TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    http_status INTEGER NOT NULL, -- 0: no answer
    latency_us  BIGINT  NOT NULL,
    error       TEXT    NOT NULL,
    changes     INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, at_ms, message_id, attempt)
);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at_ms);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_secrets;
DROP TABLE webhook_pending;
DROP TABLE webhooks;
