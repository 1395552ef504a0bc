-- KCMM sample database (the shape monetl expects; a real installation is mapped through
-- schemas/kcmm/mapping.json). KCMM watches trading desktops through their Windows UI: each collector
-- run writes one row per (machine, counter) into kcmm_sample with the desk's LOCAL wall-clock time.
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS kcmm_machine (
    machine_id    integer      PRIMARY KEY,
    machine_name  varchar(64)  NOT NULL UNIQUE,   -- Windows computer name, e.g. SH-PDJ-TRD-014
    display_name  varchar(128),                   -- e.g. 上海浦东营业部 交易终端 14
    branch        varchar(64),                    -- 营业部 (branch office)
    desk          varchar(64),                    -- equities / futures / margin / retail
    ip_address    varchar(45),
    os_version    varchar(64),
    enabled       smallint     NOT NULL DEFAULT 1
);

CREATE TABLE IF NOT EXISTS kcmm_counter (
    counter_id    integer      PRIMARY KEY,
    counter_name  varchar(64)  NOT NULL UNIQUE,   -- e.g. order_entry_latency_ms
    category      varchar(32),                    -- trading / market_data / ui / system / process
    unit          varchar(16),
    description   varchar(256)
);

CREATE TABLE IF NOT EXISTS kcmm_sample (
    sample_id     bigserial    PRIMARY KEY,
    machine_id    integer      NOT NULL REFERENCES kcmm_machine (machine_id),
    counter_id    integer      NOT NULL REFERENCES kcmm_counter (counter_id),
    sample_time   timestamp(3) without time zone NOT NULL,  -- local time of the desk (mapping: timezone)
    value         double precision,               -- numeric counters; NULL when the collector failed
    value_text    varchar(255),                   -- text counters (client_version)
    status        smallint     NOT NULL DEFAULT 0 -- 0 ok, 1 collector timeout, 2 collector error
);

CREATE INDEX IF NOT EXISTS kcmm_sample_time ON kcmm_sample (sample_time);
CREATE INDEX IF NOT EXISTS kcmm_sample_machine_counter_time ON kcmm_sample (machine_id, counter_id, sample_time);
