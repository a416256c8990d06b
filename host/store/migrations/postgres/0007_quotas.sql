-- Provider budgets shared across hosts: usage per window and pauses after a provider's 429.
-- PostgreSQL flavour; keep in step with ../sqlite/0007_quotas.sql. Timestamps are unix milliseconds.
-- Each host enforces its token buckets in memory and adds what it counted here about once a
-- second (host/src/quota.rs); a pause written by one host is applied by every host that reads it.

-- Calls admitted and refused per (tenant, provider, bucket window), summed over hosts.
CREATE TABLE quota_usage (
    tenant TEXT NOT NULL,
    provider TEXT NOT NULL,
    per_seconds BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    refused BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, provider, per_seconds, window_start)
);
CREATE INDEX quota_usage_updated_at ON quota_usage (updated_at);

-- Until when a provider's 429 stops every call of a (tenant, provider).
CREATE TABLE quota_pauses (
    tenant TEXT NOT NULL,
    provider TEXT NOT NULL,
    paused_until BIGINT NOT NULL,
    PRIMARY KEY (tenant, provider)
);

-- Each budget bucket's latest window: limit, usage, what is left, and any pause.
CREATE VIEW v_quota_status AS
SELECT u.tenant, u.provider, u.per_seconds, u.requests, u.window_start, u.used, u.refused,
       GREATEST(u.requests - u.used, 0) AS remaining, p.paused_until
FROM quota_usage u
LEFT JOIN quota_pauses p ON p.tenant = u.tenant AND p.provider = u.provider
WHERE u.window_start = (
    SELECT MAX(l.window_start) FROM quota_usage l
    WHERE l.tenant = u.tenant AND l.provider = u.provider AND l.per_seconds = u.per_seconds
);
