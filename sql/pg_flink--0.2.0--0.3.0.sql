-- pg_flink 0.2.0 -> 0.3.0. Complain if sourced in psql rather than via ALTER EXTENSION.
\echo Use "ALTER EXTENSION pg_flink UPDATE TO '0.3.0'" to load this file. \quit

-- pg_flink install script, part: added in 0.3.0 (the same statements are in
-- sql/pg_flink--0.2.0--0.3.0.sql; the upgrade test compares a fresh install with an upgraded one).
--
-- Observability: metrics sampled by the worker (latest + bounded history), freshness targets,
-- alert rules evaluated after every metrics round (one open alert per rule and pipeline,
-- NOTIFY, webhooks with retries), dead letters and their replay.

-- ------------------------------------------------------------------------------------------
-- Metrics. Observations, not catalog: not dumped by pg_dump (a restored database starts
-- sampling again).
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.pipeline_metric (
  pipeline               text PRIMARY KEY REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  job_id                 bigint,
  flink_job_id           text,
  sampled_at             timestamptz NOT NULL,
  lag_records            bigint,
  lag_seconds            double precision,
  records_in_per_second  double precision,
  records_out_per_second double precision,
  backpressure           double precision,
  checkpoints_completed  bigint,
  checkpoints_failed     bigint,
  last_checkpoint_at     timestamptz,
  restarts               bigint,
  dead_letters           bigint,
  stale                  boolean,
  stale_since            timestamptz
);
COMMENT ON TABLE flink.pipeline_metric IS 'Latest metrics of each running pipeline (written by the worker); read flink.pipeline_metrics.';

CREATE TABLE flink.pipeline_metric_history (
  pipeline               text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  flink_job_id           text,
  sampled_at             timestamptz NOT NULL,
  lag_records            bigint,
  lag_seconds            double precision,
  records_in_per_second  double precision,
  records_out_per_second double precision,
  backpressure           double precision,
  checkpoints_completed  bigint,
  checkpoints_failed     bigint,
  last_checkpoint_at     timestamptz,
  restarts               bigint,
  dead_letters           bigint
);
CREATE INDEX pipeline_metric_history_by_pipeline ON flink.pipeline_metric_history (pipeline, sampled_at);
CREATE INDEX pipeline_metric_history_by_time ON flink.pipeline_metric_history (sampled_at);
COMMENT ON TABLE flink.pipeline_metric_history IS 'Metrics samples, kept pg_flink.metrics_retention_min minutes (the worker deletes older ones); read flink.pipeline_metrics_history.';

CREATE VIEW flink.pipeline_metrics AS
  SELECT m.pipeline, m.flink_job_id, m.sampled_at, m.lag_records, m.lag_seconds,
         m.records_in_per_second, m.records_out_per_second, m.backpressure,
         m.checkpoints_completed, m.checkpoints_failed, m.last_checkpoint_at,
         now() - m.last_checkpoint_at AS checkpoint_age, m.restarts, m.dead_letters,
         (p.options->>'freshness')::interval AS freshness, m.stale, m.stale_since
  FROM flink.pipeline_metric m JOIN flink.pipeline p ON p.name = m.pipeline;
COMMENT ON VIEW flink.pipeline_metrics IS 'Latest metrics of every pipeline sampled while running: Kafka lag (records and seconds), records in/out per second, backpressure (0..1), checkpoints, Flink restarts, dead letters, freshness.';

CREATE VIEW flink.pipeline_metrics_history AS
  SELECT h.pipeline, h.flink_job_id, h.sampled_at, h.lag_records, h.lag_seconds,
         h.records_in_per_second, h.records_out_per_second, h.backpressure,
         h.checkpoints_completed, h.checkpoints_failed, h.last_checkpoint_at, h.restarts, h.dead_letters
  FROM flink.pipeline_metric_history h;
COMMENT ON VIEW flink.pipeline_metrics_history IS 'Every metrics sample of the last pg_flink.metrics_retention_min minutes.';

-- pipeline_status gains the freshness target, the measured lag and fresh/stale (columns at the end).
CREATE OR REPLACE VIEW flink.pipeline_status AS
  SELECT p.name AS pipeline, COALESCE(ps.desired, 'stopped') AS desired, j.state AS actual,
         CASE WHEN COALESCE(ps.desired, 'stopped') = 'running' THEN
                j.state = 'RUNNING'
                AND NOT COALESCE(j.last_restart_at > now() - h.window, false)
                AND (h.checkpoint_every IS NULL
                     OR COALESCE(j.last_checkpoint_at, j.started_at) > now() - GREATEST(3 * h.checkpoint_every, h.window))
              ELSE j.state IS NULL OR j.state IN ('STOPPED', 'CANCELED', 'FINISHED', 'LOST', 'DETACHED', 'SUBMIT_FAILED', 'FAILED')
         END AS healthy,
         j.flink_job_id, j.pipeline_version AS running_version, p.version AS defined_version,
         CASE WHEN j.state = 'RUNNING' THEN now() - j.started_at END AS uptime,
         COALESCE(j.flink_restarts, 0) AS restarts,
         j.last_checkpoint_at,
         (SELECT max(s.taken_at) FROM flink.savepoint s WHERE s.pipeline = p.name) AS last_savepoint_at,
         j.last_error, p.needs_restart, j.updated_at,
         COALESCE(j.last_restart_at > now() - h.window, false) AS restarting,
         j.last_restart_at,
         (p.options->>'freshness')::interval AS freshness,
         CASE WHEN m.flink_job_id = j.flink_job_id AND j.state = 'RUNNING' THEN m.lag_seconds * interval '1 second' END AS lag,
         CASE WHEN m.flink_job_id = j.flink_job_id AND j.state = 'RUNNING' AND m.stale IS NOT NULL
              THEN CASE WHEN m.stale THEN 'stale' ELSE 'fresh' END END AS fresh
  FROM flink.pipeline p
  LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
  LEFT JOIN LATERAL (SELECT * FROM flink.job x WHERE x.pipeline = p.name ORDER BY x.id DESC LIMIT 1) j ON true
  LEFT JOIN flink.pipeline_metric m ON m.pipeline = p.name
  -- The setting shows with its unit ("1min", "1500ms"): both are interval input.
  CROSS JOIN LATERAL (SELECT COALESCE(NULLIF(current_setting('pg_flink.health_window_ms', true), '')::interval, interval '1 minute') AS window,
                             (p.options->>'checkpoint_interval')::interval AS checkpoint_every) h;
COMMENT ON VIEW flink.pipeline_status IS 'Desired vs actual state of every pipeline. healthy: desired running, the job RUNNING, no Flink restart within pg_flink.health_window_ms and, with checkpoint_interval set, a checkpoint within 3 intervals; desired stopped and nothing running. restarts: Flink''s own restart count of the job. freshness/lag/fresh: the freshness target, the measured lag and whether it is met (running pipelines with a target).';

-- One metrics round of the worker: the latest row per pipeline, a history row, freshness
-- transitions (events + NOTIFY), and the history's retention.
-- samples: [{pipeline, job_id, flink_job_id, lag_records, lag_seconds, records_in, records_out,
--            backpressure, checkpoints_completed, checkpoints_failed, last_checkpoint_ms,
--            restarts, dead_letters}]
CREATE FUNCTION flink_internal.record_metrics(samples jsonb, retention interval)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  s record;
  prev flink.pipeline_metric;
  target interval;
  is_stale boolean;
  since timestamptz;
  what text;
BEGIN
  FOR s IN
    SELECT * FROM jsonb_to_recordset(samples) AS x(pipeline text, job_id bigint, flink_job_id text,
      lag_records bigint, lag_seconds double precision, records_in double precision,
      records_out double precision, backpressure double precision, checkpoints_completed bigint,
      checkpoints_failed bigint, last_checkpoint_ms bigint, restarts bigint, dead_letters bigint)
  LOOP
    SELECT (p.options->>'freshness')::interval INTO target FROM flink.pipeline p WHERE p.name = s.pipeline;
    IF NOT FOUND THEN
      CONTINUE; -- dropped since the round began
    END IF;
    SELECT * INTO prev FROM flink.pipeline_metric m WHERE m.pipeline = s.pipeline;
    -- Without a measured lag (no Kafka source) nothing is known: the previous verdict stands.
    is_stale := CASE WHEN target IS NULL THEN NULL
                     WHEN s.lag_seconds IS NULL THEN prev.stale
                     ELSE s.lag_seconds * interval '1 second' > target END;
    since := CASE WHEN is_stale AND prev.stale THEN prev.stale_since WHEN is_stale THEN now() END;
    INSERT INTO flink.pipeline_metric AS m VALUES (s.pipeline, s.job_id, s.flink_job_id, now(), s.lag_records,
        s.lag_seconds, s.records_in, s.records_out, s.backpressure, s.checkpoints_completed,
        s.checkpoints_failed, to_timestamp(s.last_checkpoint_ms / 1000.0), s.restarts, s.dead_letters,
        is_stale, since)
      ON CONFLICT (pipeline) DO UPDATE SET job_id = EXCLUDED.job_id, flink_job_id = EXCLUDED.flink_job_id,
        sampled_at = EXCLUDED.sampled_at, lag_records = EXCLUDED.lag_records, lag_seconds = EXCLUDED.lag_seconds,
        records_in_per_second = EXCLUDED.records_in_per_second, records_out_per_second = EXCLUDED.records_out_per_second,
        backpressure = EXCLUDED.backpressure, checkpoints_completed = EXCLUDED.checkpoints_completed,
        checkpoints_failed = EXCLUDED.checkpoints_failed, last_checkpoint_at = EXCLUDED.last_checkpoint_at,
        restarts = EXCLUDED.restarts, dead_letters = EXCLUDED.dead_letters, stale = EXCLUDED.stale,
        stale_since = EXCLUDED.stale_since;
    INSERT INTO flink.pipeline_metric_history VALUES (s.pipeline, s.flink_job_id, now(), s.lag_records,
        s.lag_seconds, s.records_in, s.records_out, s.backpressure, s.checkpoints_completed,
        s.checkpoints_failed, to_timestamp(s.last_checkpoint_ms / 1000.0), s.restarts, s.dead_letters);
    -- Turning stale, and fresh again, are events (a first sample that is fresh is not).
    IF is_stale IS NOT NULL AND is_stale IS DISTINCT FROM COALESCE(prev.stale, false)
       AND EXISTS (SELECT 1 FROM flink.job j WHERE j.id = s.job_id) THEN
      what := format('lag %s s, %s records behind (freshness %s)', round(s.lag_seconds::numeric, 1),
                     COALESCE(s.lag_records::text, 'unknown'), target);
      INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
        VALUES (s.job_id, s.pipeline, CASE WHEN is_stale THEN 'FRESH' ELSE 'STALE' END,
                CASE WHEN is_stale THEN 'STALE' ELSE 'FRESH' END, what);
      PERFORM pg_notify('flink_job_state', jsonb_build_object(
        'pipeline', s.pipeline, 'job', s.job_id, 'flink_job_id', s.flink_job_id,
        'from', CASE WHEN is_stale THEN 'FRESH' ELSE 'STALE' END,
        'to', CASE WHEN is_stale THEN 'STALE' ELSE 'FRESH' END,
        'lag_seconds', s.lag_seconds, 'lag_records', s.lag_records, 'detail', what)::text);
    END IF;
  END LOOP;
  DELETE FROM flink.pipeline_metric_history h WHERE h.sampled_at < now() - retention;
END
$fn$;

-- ------------------------------------------------------------------------------------------
-- Alerts
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.alert_rule (
  name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
  pipeline    text NOT NULL,
  condition   text NOT NULL CHECK (condition IN ('failed', 'restarting', 'no_checkpoint', 'lag', 'stale', 'not_desired', 'dead_letters')),
  threshold   double precision,
  "window"    interval,
  webhook_url text,
  rate_limit  interval NOT NULL DEFAULT interval '5 minutes',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flink.alert_rule IS 'Alert rules (flink.create_alert); read flink.alert_rules.';

-- Webhook headers (e.g. Authorization): readable by flink_admin and superusers only.
CREATE TABLE flink.alert_rule_secret (
  rule    text PRIMARY KEY REFERENCES flink.alert_rule (name) ON DELETE CASCADE ON UPDATE CASCADE,
  headers jsonb NOT NULL
);
COMMENT ON TABLE flink.alert_rule_secret IS 'Webhook headers of alert rules; readable by flink_admin and superusers only.';

-- Open alerts: at most one per rule and pipeline while its condition holds.
CREATE TABLE flink.alert (
  rule       text NOT NULL REFERENCES flink.alert_rule (name) ON DELETE CASCADE,
  pipeline   text NOT NULL,
  fired_at   timestamptz NOT NULL DEFAULT now(),
  detail     jsonb NOT NULL,
  suppressed boolean NOT NULL DEFAULT false,
  PRIMARY KEY (rule, pipeline)
);
COMMENT ON TABLE flink.alert IS 'Open alerts, one per rule and pipeline (written by the worker); read flink.alerts.';

CREATE TABLE flink.alert_event (
  id               bigserial PRIMARY KEY,
  rule             text NOT NULL,
  pipeline         text NOT NULL,
  condition        text NOT NULL,
  event            text NOT NULL CHECK (event IN ('fired', 'resolved')),
  at               timestamptz NOT NULL DEFAULT clock_timestamp(),
  detail           jsonb NOT NULL,
  suppressed       boolean NOT NULL DEFAULT false,
  webhook_status   text CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
  webhook_attempts integer NOT NULL DEFAULT 0,
  webhook_next_at  timestamptz,
  webhook_error    text
);
CREATE INDEX alert_event_by_rule ON flink.alert_event (rule, pipeline, id);
CREATE INDEX alert_event_webhook_due ON flink.alert_event (webhook_next_at) WHERE webhook_status = 'pending';
COMMENT ON TABLE flink.alert_event IS 'Alerts fired and resolved, with their webhook delivery (written by the worker); read flink.alert_history.';

SELECT pg_catalog.pg_extension_config_dump('flink.alert_rule', '');
SELECT pg_catalog.pg_extension_config_dump('flink.alert_rule_secret', '');
SELECT pg_catalog.pg_extension_config_dump('flink.alert', '');
SELECT pg_catalog.pg_extension_config_dump('flink.alert_event', '');
SELECT pg_catalog.pg_extension_config_dump('flink.alert_event_id_seq', '');

CREATE VIEW flink.alert_rules AS
  SELECT r.name, r.pipeline, r.condition, r.threshold, r."window", r.webhook_url,
         (SELECT pg_catalog.jsonb_object_agg(k, '***') FROM flink.alert_rule_secret s,
                 pg_catalog.jsonb_object_keys(s.headers) k WHERE s.rule = r.name) AS webhook_headers,
         r.rate_limit, r.created_at, r.updated_at
  FROM flink.alert_rule r;
COMMENT ON VIEW flink.alert_rules IS 'Alert rules; webhook header values show as "***".';

CREATE VIEW flink.alerts AS
  SELECT a.rule, a.pipeline, r.condition, a.fired_at, a.detail, a.suppressed
  FROM flink.alert a JOIN flink.alert_rule r ON r.name = a.rule;
COMMENT ON VIEW flink.alerts IS 'Open alerts: one per rule and pipeline while the rule''s condition holds.';

CREATE VIEW flink.alert_history AS
  SELECT e.id, e.rule, e.pipeline, e.condition, e.event, e.at, e.detail, e.suppressed,
         e.webhook_status, e.webhook_attempts, e.webhook_error
  FROM flink.alert_event e;
COMMENT ON VIEW flink.alert_history IS 'Every alert fired and resolved (suppressed: fired again within the rule''s rate_limit, recorded but not delivered), with its webhook delivery.';

CREATE FUNCTION flink.create_alert(name text, pipeline text, condition text,
                                   threshold double precision DEFAULT NULL, "window" interval DEFAULT NULL,
                                   webhook_url text DEFAULT NULL, webhook_headers jsonb DEFAULT NULL,
                                   rate_limit interval DEFAULT interval '5 minutes')
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r flink.alert_rule;
  old_headers jsonb;
  th double precision := threshold;
  w interval := "window";
  k text;
BEGIN
  IF name IS NULL OR name !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
    RAISE EXCEPTION 'alert rule name % is not valid', COALESCE(quote_literal(name), 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'A name starts with a letter or _ and has at most 63 letters, digits, _ . -.';
  END IF;
  IF pipeline IS NULL OR pipeline = '' THEN
    RAISE EXCEPTION 'alert rule "%": pipeline must be a pipeline name or a LIKE pattern', name
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''%'' for every pipeline.';
  END IF;
  IF condition IS NULL OR condition NOT IN ('failed', 'restarting', 'no_checkpoint', 'lag', 'stale', 'not_desired', 'dead_letters') THEN
    RAISE EXCEPTION 'alert rule "%": unknown condition %', name, COALESCE(quote_literal(condition), 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Conditions: failed, restarting, no_checkpoint, lag, stale, not_desired, dead_letters.';
  END IF;
  -- Defaults and required settings per condition.
  IF condition = 'restarting' THEN
    th := COALESCE(th, 0); w := COALESCE(w, interval '10 minutes');
  ELSIF condition = 'dead_letters' THEN
    th := COALESCE(th, 0); w := COALESCE(w, interval '5 minutes');
  ELSIF condition = 'not_desired' THEN
    w := COALESCE(w, interval '2 minutes');
  ELSIF condition = 'no_checkpoint' AND w IS NULL THEN
    RAISE EXCEPTION 'alert rule "%": condition no_checkpoint needs a window', name
      USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. "window" => ''10 minutes'': fire when no checkpoint completed for that long.';
  ELSIF condition = 'lag' AND th IS NULL THEN
    RAISE EXCEPTION 'alert rule "%": condition lag needs a threshold', name
      USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. threshold => 60: fire when the lag is above 60 seconds.';
  END IF;
  IF th IS NOT NULL AND (th < 0 OR th = 'NaN'::float8 OR th = 'Infinity'::float8) THEN
    RAISE EXCEPTION 'alert rule "%": threshold % must be a finite number >= 0', name, th
      USING ERRCODE = 'invalid_parameter_value', HINT = 'restarting/dead_letters: a count; lag: seconds.';
  END IF;
  IF w IS NOT NULL AND w <= interval '0' THEN
    RAISE EXCEPTION 'alert rule "%": window % must be positive', name, w
      USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. ''5 minutes''.';
  END IF;
  IF rate_limit IS NULL OR rate_limit < interval '0' THEN
    RAISE EXCEPTION 'alert rule "%": rate_limit must be an interval >= 0', name
      USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. ''5 minutes'' (an alert that fires again within it is recorded, not delivered).';
  END IF;
  IF webhook_url IS NOT NULL AND webhook_url !~* '^https?://[^/?#@[:space:]]+(/[^[:space:]]*)?$' THEN
    RAISE EXCEPTION 'alert rule "%": webhook_url must be an http:// or https:// URL without credentials', name
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Put credentials in webhook_headers (stored like datasource secrets).';
  END IF;
  IF webhook_headers IS NOT NULL THEN
    IF jsonb_typeof(webhook_headers) <> 'object' THEN
      RAISE EXCEPTION 'alert rule "%": webhook_headers must be a JSON object of header names and values', name
        USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. ''{"Authorization": "Bearer …"}''.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(webhook_headers) LOOP
      IF k !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$' OR jsonb_typeof(webhook_headers->k) <> 'string'
         OR (webhook_headers->>k) ~ '[\r\n]' THEN
        RAISE EXCEPTION 'alert rule "%": webhook_headers: header % is not a valid header name with a one-line string value', name, quote_literal(k)
          USING ERRCODE = 'invalid_parameter_value', HINT = 'Header values are strings without line breaks.';
      END IF;
    END LOOP;
    IF webhook_url IS NULL THEN
      RAISE EXCEPTION 'alert rule "%": webhook_headers without webhook_url', name
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Give webhook_url too, or leave webhook_headers out.';
    END IF;
  END IF;
  SELECT * INTO r FROM flink.alert_rule a WHERE a.name = create_alert.name FOR UPDATE;
  SELECT s.headers INTO old_headers FROM flink.alert_rule_secret s WHERE s.rule = create_alert.name;
  IF FOUND OR r.name IS NOT NULL THEN
    IF r.pipeline = create_alert.pipeline AND r.condition = create_alert.condition
       AND r.threshold IS NOT DISTINCT FROM th AND r."window" IS NOT DISTINCT FROM w
       AND r.webhook_url IS NOT DISTINCT FROM create_alert.webhook_url
       AND r.rate_limit = create_alert.rate_limit
       AND old_headers IS NOT DISTINCT FROM webhook_headers THEN
      RETURN 'unchanged';
    END IF;
  END IF;
  IF r.name IS NOT NULL THEN
    UPDATE flink.alert_rule a SET pipeline = create_alert.pipeline, condition = create_alert.condition,
           threshold = th, "window" = w, webhook_url = create_alert.webhook_url,
           rate_limit = create_alert.rate_limit, updated_at = now()
     WHERE a.name = create_alert.name;
    -- Open alerts belonged to the old definition: they end without a resolution event.
    DELETE FROM flink.alert a WHERE a.rule = create_alert.name;
  ELSE
    INSERT INTO flink.alert_rule (name, pipeline, condition, threshold, "window", webhook_url, rate_limit)
      VALUES (create_alert.name, create_alert.pipeline, create_alert.condition, th, w, create_alert.webhook_url,
              create_alert.rate_limit);
  END IF;
  DELETE FROM flink.alert_rule_secret s WHERE s.rule = create_alert.name;
  IF webhook_headers IS NOT NULL THEN
    INSERT INTO flink.alert_rule_secret VALUES (create_alert.name, webhook_headers);
  END IF;
  RETURN CASE WHEN r.name IS NULL THEN 'created' ELSE 'replaced' END;
END
$fn$;
COMMENT ON FUNCTION flink.create_alert(text, text, text, double precision, interval, text, jsonb, interval) IS
  'Creates (or replaces, or leaves unchanged) an alert rule: condition failed | restarting | no_checkpoint | lag | stale | not_desired | dead_letters on a pipeline or LIKE pattern; NOTIFY flink_alert and optionally a webhook POST.';

CREATE FUNCTION flink.drop_alert(name text, if_exists boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  DELETE FROM flink.alert_rule a WHERE a.name = drop_alert.name;
  IF NOT FOUND THEN
    IF if_exists THEN
      RETURN false;
    END IF;
    RAISE EXCEPTION 'alert rule "%" does not exist', name
      USING ERRCODE = 'undefined_object', HINT = 'See flink.alert_rules; pass if_exists => true to ignore.';
  END IF;
  RETURN true;
END
$fn$;
COMMENT ON FUNCTION flink.drop_alert(text, boolean) IS 'Drops an alert rule (its open alerts end; its history stays).';

-- Conditions that hold now: one row per (rule, pipeline) with what was seen.
CREATE FUNCTION flink_internal.alert_conditions()
RETURNS TABLE (rule text, pipeline text, condition text, detail jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  WITH rp AS (
    SELECT r.name AS rule, r.condition, r.threshold, r."window", p.name AS pipeline,
           COALESCE(ps.desired, 'stopped') AS desired, ps.requested_at, j.id AS job_id, j.state,
           j.flink_job_id, j.started_at, j.last_checkpoint_at AS job_checkpoint_at, j.last_error,
           CASE WHEN m.flink_job_id IS NOT DISTINCT FROM j.flink_job_id AND j.state = 'RUNNING' THEN m END AS m,
           -- The job's counters whatever its state (a crash-looping job is mostly RESTARTING).
           CASE WHEN m.flink_job_id = j.flink_job_id THEN m END AS mj
    FROM flink.alert_rule r
    JOIN flink.pipeline p ON p.name = r.pipeline OR p.name LIKE r.pipeline
    LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
    LEFT JOIN LATERAL (SELECT * FROM flink.job x WHERE x.pipeline = p.name ORDER BY x.id DESC LIMIT 1) j ON true
    LEFT JOIN flink.pipeline_metric m ON m.pipeline = p.name
  ), base AS (
    -- Counters at the start of the window: the newest sample of the same Flink job at or before
    -- it, else (the job started within it) zero, else the oldest sample within it.
    SELECT rp.*,
           COALESCE(
             (SELECT h FROM flink.pipeline_metric_history h WHERE h.pipeline = rp.pipeline
                AND h.flink_job_id = rp.flink_job_id AND h.sampled_at <= now() - rp."window"
              ORDER BY h.sampled_at DESC LIMIT 1),
             CASE WHEN rp.started_at > now() - rp."window" THEN NULL ELSE
               (SELECT h FROM flink.pipeline_metric_history h WHERE h.pipeline = rp.pipeline
                  AND h.flink_job_id = rp.flink_job_id ORDER BY h.sampled_at LIMIT 1) END) AS b
    FROM rp WHERE rp.condition IN ('restarting', 'dead_letters')
  )
  SELECT rp.rule, rp.pipeline, rp.condition,
         jsonb_build_object('state', rp.state, 'error', left(rp.last_error, 500))
  FROM rp WHERE rp.condition = 'failed' AND rp.desired = 'running'
    AND rp.state IN ('FAILED', 'SUBMIT_FAILED', 'FAILING')
  UNION ALL
  SELECT b.rule, b.pipeline, b.condition,
         jsonb_build_object('restarts', (b.mj).restarts - COALESCE((b.b).restarts, 0), 'window', b."window"::text,
                            'threshold', b.threshold, 'state', b.state, 'error', left(b.last_error, 500))
  FROM base b WHERE b.condition = 'restarting' AND b.desired = 'running' AND (b.mj).restarts IS NOT NULL
    AND (b.mj).restarts - COALESCE((b.b).restarts, 0) > b.threshold
  UNION ALL
  SELECT rp.rule, rp.pipeline, rp.condition,
         jsonb_build_object('last_checkpoint_at', COALESCE((rp.m).last_checkpoint_at, rp.job_checkpoint_at),
                            'window', rp."window"::text)
  FROM rp WHERE rp.condition = 'no_checkpoint' AND rp.desired = 'running' AND rp.state = 'RUNNING'
    AND COALESCE((rp.m).last_checkpoint_at, rp.job_checkpoint_at, rp.started_at) < now() - rp."window"
  UNION ALL
  SELECT rp.rule, rp.pipeline, rp.condition,
         jsonb_build_object('lag_seconds', (rp.m).lag_seconds, 'lag_records', (rp.m).lag_records,
                            'threshold', rp.threshold)
  FROM rp WHERE rp.condition = 'lag' AND rp.desired = 'running' AND (rp.m).lag_seconds > rp.threshold
  UNION ALL
  SELECT rp.rule, rp.pipeline, rp.condition,
         jsonb_build_object('lag_seconds', (rp.m).lag_seconds, 'lag_records', (rp.m).lag_records,
                            'stale_since', (rp.m).stale_since)
  FROM rp WHERE rp.condition = 'stale' AND rp.desired = 'running' AND (rp.m).stale
  UNION ALL
  SELECT rp.rule, rp.pipeline, rp.condition,
         jsonb_build_object('desired', rp.desired, 'actual', rp.state, 'since', t.since, 'window', rp."window"::text)
  FROM rp
  CROSS JOIN LATERAL (SELECT GREATEST(rp.requested_at,
                               (SELECT max(e.at) FROM flink.job_event e WHERE e.job_id = rp.job_id
                                  AND e.to_state NOT IN ('FRESH', 'STALE'))) AS since) t
  WHERE rp.condition = 'not_desired' AND t.since < now() - rp."window"
    AND CASE WHEN rp.desired = 'running' THEN rp.state IS DISTINCT FROM 'RUNNING'
             ELSE rp.state IS NOT NULL AND rp.state NOT IN ('STOPPED', 'CANCELED', 'FINISHED', 'LOST', 'DETACHED', 'SUBMIT_FAILED', 'FAILED') END
  UNION ALL
  SELECT b.rule, b.pipeline, b.condition,
         jsonb_build_object('dead_letters', (b.mj).dead_letters - COALESCE((b.b).dead_letters, 0),
                            'window', b."window"::text, 'threshold', b.threshold)
  FROM base b WHERE b.condition = 'dead_letters' AND (b.mj).dead_letters IS NOT NULL
    AND (b.mj).dead_letters - COALESCE((b.b).dead_letters, 0) > b.threshold
$fn$;

-- The JSON of an alert event: the NOTIFY payload and the webhook body are the same.
CREATE FUNCTION flink_internal.alert_payload(e flink.alert_event)
RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT jsonb_build_object('rule', e.rule, 'pipeline', e.pipeline, 'condition', e.condition,
                            'event', e.event, 'at', e.at, 'detail', e.detail)
$fn$;

-- Fires alerts whose condition holds (once per rule and pipeline), resolves those whose
-- condition cleared; NOTIFY flink_alert, webhook deliveries queued. Returns the events made.
CREATE FUNCTION flink_internal.evaluate_alerts()
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  c record;
  a record;
  r flink.alert_rule;
  quiet boolean;
  ev flink.alert_event;
  now_true jsonb;
  n integer := 0;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM flink.alert_rule) THEN
    RETURN 0;
  END IF;
  now_true := COALESCE((SELECT jsonb_agg(to_jsonb(x)) FROM flink_internal.alert_conditions() x), '[]'::jsonb);
  FOR c IN SELECT x.* FROM jsonb_to_recordset(now_true) AS x(rule text, pipeline text, condition text, detail jsonb)
           WHERE NOT EXISTS (SELECT 1 FROM flink.alert o WHERE o.rule = x.rule AND o.pipeline = x.pipeline)
  LOOP
    SELECT * INTO r FROM flink.alert_rule x WHERE x.name = c.rule;
    quiet := EXISTS (SELECT 1 FROM flink.alert_event e WHERE e.rule = c.rule AND e.pipeline = c.pipeline
                       AND e.event = 'fired' AND e.at > now() - r.rate_limit);
    INSERT INTO flink.alert (rule, pipeline, detail, suppressed) VALUES (c.rule, c.pipeline, c.detail, quiet)
      ON CONFLICT DO NOTHING;
    INSERT INTO flink.alert_event (rule, pipeline, condition, event, detail, suppressed, webhook_status, webhook_next_at)
      VALUES (c.rule, c.pipeline, c.condition, 'fired', c.detail, quiet,
              CASE WHEN r.webhook_url IS NOT NULL AND NOT quiet THEN 'pending' END, now())
      RETURNING * INTO ev;
    IF NOT quiet THEN
      PERFORM pg_notify('flink_alert', flink_internal.alert_payload(ev)::text);
    END IF;
    n := n + 1;
  END LOOP;
  FOR a IN SELECT o.*, ar.condition, ar.webhook_url FROM flink.alert o JOIN flink.alert_rule ar ON ar.name = o.rule
           WHERE NOT now_true @> jsonb_build_array(jsonb_build_object('rule', o.rule, 'pipeline', o.pipeline))
  LOOP
    DELETE FROM flink.alert o WHERE o.rule = a.rule AND o.pipeline = a.pipeline;
    INSERT INTO flink.alert_event (rule, pipeline, condition, event, detail, suppressed, webhook_status, webhook_next_at)
      VALUES (a.rule, a.pipeline, a.condition, 'resolved', a.detail || jsonb_build_object('fired_at', a.fired_at),
              a.suppressed, CASE WHEN a.webhook_url IS NOT NULL AND NOT a.suppressed THEN 'pending' END, now())
      RETURNING * INTO ev;
    IF NOT a.suppressed THEN
      PERFORM pg_notify('flink_alert', flink_internal.alert_payload(ev)::text);
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$fn$;

-- Webhook deliveries due now (the worker POSTs them and reports with webhook_result).
CREATE FUNCTION flink_internal.webhooks_due(max_rows integer)
RETURNS TABLE (id bigint, url text, headers jsonb, payload jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT e.id, r.webhook_url, COALESCE(s.headers, '{}'::jsonb), flink_internal.alert_payload(e)
  FROM flink.alert_event e
  JOIN flink.alert_rule r ON r.name = e.rule AND r.webhook_url IS NOT NULL
  LEFT JOIN flink.alert_rule_secret s ON s.rule = e.rule
  WHERE e.webhook_status = 'pending' AND e.webhook_next_at <= now()
  ORDER BY e.webhook_next_at, e.id
  LIMIT max_rows
$fn$;

-- A delivery attempt's outcome: delivered, or retried with backoff (1, 2, 4, 8 s) until
-- max_attempts, then failed. A rule dropped meanwhile leaves its pending events failed.
CREATE FUNCTION flink_internal.webhook_result(event_id bigint, ok boolean, error text, max_attempts integer)
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  UPDATE flink.alert_event e
     SET webhook_attempts = e.webhook_attempts + 1,
         webhook_status = CASE WHEN ok THEN 'delivered'
                               WHEN e.webhook_attempts + 1 >= max_attempts THEN 'failed' ELSE 'pending' END,
         webhook_error = CASE WHEN ok THEN NULL ELSE left(error, 1000) END,
         webhook_next_at = CASE WHEN ok OR e.webhook_attempts + 1 >= max_attempts THEN NULL
                                ELSE now() + make_interval(secs => power(2, e.webhook_attempts)) END
   WHERE e.id = event_id AND e.webhook_status = 'pending'
$fn$;

-- ------------------------------------------------------------------------------------------
-- Dead letters: records a pipeline could not decode (options.on_bad_record = 'dead_letter')
-- are written by its job, raw, to the Kafka topic <pipeline>.dead_letters, with headers
-- pg_flink.topic / .partition / .offset / .timestamp / .error. Replays are recorded here.
-- ------------------------------------------------------------------------------------------
CREATE TABLE flink.dead_letter_replay (
  pipeline              text NOT NULL REFERENCES flink.pipeline (name) ON DELETE CASCADE,
  dead_letter_partition integer NOT NULL,
  dead_letter_offset    bigint NOT NULL,
  replayed_at           timestamptz NOT NULL DEFAULT now(),
  replayed_by           text NOT NULL DEFAULT current_user,
  changed               boolean NOT NULL,
  PRIMARY KEY (pipeline, dead_letter_partition, dead_letter_offset)
);
COMMENT ON TABLE flink.dead_letter_replay IS 'Dead letters replayed by flink.replay_dead_letters.';
SELECT pg_catalog.pg_extension_config_dump('flink.dead_letter_replay', '');

-- The foreign table over a pipeline's dead-letter topic (made on first use, in flink_internal,
-- dropped with the pipeline): the Kafka datasource is the pipeline's first Kafka source.
CREATE FUNCTION flink_internal.dead_letter_table(pipeline text)
RETURNS regclass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  ds text;
  srv text;
  tbl text := format('flink_internal.%I', left(pipeline, 50) || '.dead_letters');
  rel regclass;
BEGIN
  SELECT * INTO p FROM flink.pipeline x WHERE x.name = dead_letter_table.pipeline;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pipeline "%" does not exist', pipeline
      USING ERRCODE = 'undefined_object', HINT = 'See flink.pipelines for the stored pipelines.';
  END IF;
  rel := to_regclass(tbl);
  IF rel IS NOT NULL AND EXISTS (SELECT 1 FROM flink.result_table r WHERE r.pipeline = p.name AND r.relid = rel) THEN
    RETURN rel;
  END IF;
  IF COALESCE(p.options->>'on_bad_record', 'fail') <> 'dead_letter' THEN
    RAISE EXCEPTION 'pipeline "%" does not keep dead letters (options.on_bad_record is %)', p.name,
      COALESCE(p.options->>'on_bad_record', 'fail')
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Create the pipeline with options {"on_bad_record": "dead_letter"} (then flink.restart) to route records it cannot decode to <pipeline>.dead_letters.';
  END IF;
  SELECT d.name INTO ds FROM unnest(ARRAY[p.params->'source'->>'datasource', p.params->'left'->>'datasource',
                                           p.params->'right'->>'datasource']) WITH ORDINALITY AS c(name, o)
    JOIN flink.datasource d ON d.name = c.name AND d.kind = 'kafka' ORDER BY c.o LIMIT 1;
  IF ds IS NULL THEN
    RAISE EXCEPTION 'pipeline "%" has no Kafka source', p.name
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Dead letters are kept for Kafka JSON sources.';
  END IF;
  srv := 'pg_flink_' || ds;
  IF NOT EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = srv) THEN
    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (datasource %L)', srv, ds);
  END IF;
  IF rel IS NOT NULL THEN
    RAISE EXCEPTION 'relation % exists and was not made by pg_flink for pipeline "%"', tbl, p.name
      USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it.';
  END IF;
  EXECUTE format('CREATE FOREIGN TABLE %s (_partition integer, _offset bigint, _timestamp timestamptz, _key bytea, '
                 '_value bytea, _headers jsonb) SERVER %I OPTIONS (topic %L, format %L)',
                 tbl, srv, p.name || '.dead_letters', 'text');
  rel := to_regclass(tbl);
  INSERT INTO flink.result_table VALUES (p.name, rel) ON CONFLICT DO NOTHING;
  RETURN rel;
END
$fn$;

CREATE FUNCTION flink.dead_letters(pipeline text)
RETURNS TABLE (source_datasource text, source_topic text, source_partition integer, source_offset bigint,
               source_timestamp timestamptz, error text, key bytea, value bytea, value_text text,
               dead_letter_partition integer, dead_letter_offset bigint, replayed_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  rel regclass := flink_internal.dead_letter_table(pipeline);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = rel) THEN
    RETURN;
  END IF;
  RETURN QUERY EXECUTE format(
    'SELECT d._headers->>''pg_flink.datasource'', d._headers->>''pg_flink.topic'', (d._headers->>''pg_flink.partition'')::integer, '
    '       (d._headers->>''pg_flink.offset'')::bigint, d._timestamp, d._headers->>''pg_flink.error'', d._key, d._value, '
    '       CASE WHEN d._value IS NOT NULL THEN convert_from(d._value, ''UTF8'') END, '
    '       d._partition, d._offset, r.replayed_at '
    'FROM %s d LEFT JOIN flink.dead_letter_replay r ON r.pipeline = $1 AND r.dead_letter_partition = d._partition '
    '  AND r.dead_letter_offset = d._offset '
    'ORDER BY d._partition, d._offset', rel) USING pipeline;
EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
  RAISE EXCEPTION 'pipeline "%": a dead letter''s value is not UTF-8 text', pipeline
    USING ERRCODE = 'character_not_in_repertoire',
          HINT = 'Read the raw bytes: SELECT value FROM flink.dead_letters(…) is bytea; value_text needs UTF-8.';
END
$fn$;
COMMENT ON FUNCTION flink.dead_letters(text) IS
  'Records the pipeline could not decode (options.on_bad_record = dead_letter): where they came from, why, their raw key and value, and when they were replayed.';

-- Re-produces dead letters to their source topics (in the Kafka transaction of this
-- transaction: rolled back, nothing is produced). With a position, only that dead letter, with
-- its value replaced by `value` when given; without, every one not replayed yet, unchanged.
CREATE FUNCTION flink.replay_dead_letters(pipeline text, dead_letter_partition integer DEFAULT NULL,
                                          dead_letter_offset bigint DEFAULT NULL, value text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  d record;
  tbl text;
  srv text;
  n bigint := 0;
BEGIN
  IF (dead_letter_partition IS NULL) <> (dead_letter_offset IS NULL) THEN
    RAISE EXCEPTION 'pipeline "%": give both dead_letter_partition and dead_letter_offset, or neither', pipeline
      USING ERRCODE = 'invalid_parameter_value', HINT = 'See flink.dead_letters(pipeline) for the positions.';
  END IF;
  IF value IS NOT NULL AND dead_letter_partition IS NULL THEN
    RAISE EXCEPTION 'pipeline "%": a replacement value needs the position of one dead letter', pipeline
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass dead_letter_partition and dead_letter_offset.';
  END IF;
  FOR d IN SELECT * FROM flink.dead_letters(pipeline) x
           WHERE CASE WHEN replay_dead_letters.dead_letter_partition IS NULL THEN x.replayed_at IS NULL
                      ELSE x.dead_letter_partition = replay_dead_letters.dead_letter_partition
                           AND x.dead_letter_offset = replay_dead_letters.dead_letter_offset END
  LOOP
    IF d.source_topic IS NULL OR d.source_datasource IS NULL THEN
      CONTINUE;
    END IF;
    -- A writer for the source topic (made once, dropped with the pipeline).
    tbl := format('flink_internal.%I', 'replay_' || left(md5(pipeline || '/' || d.source_datasource || '/' || d.source_topic), 20));
    IF to_regclass(tbl) IS NULL THEN
      srv := 'pg_flink_' || d.source_datasource;
      IF NOT EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = srv) THEN
        EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER pg_flink_kafka OPTIONS (datasource %L)', srv, d.source_datasource);
      END IF;
      EXECUTE format('CREATE FOREIGN TABLE %s (_key bytea, _value bytea, _headers jsonb) SERVER %I OPTIONS (topic %L, format %L)',
                     tbl, srv, d.source_topic, 'text');
      INSERT INTO flink.result_table VALUES (pipeline, to_regclass(tbl)) ON CONFLICT DO NOTHING;
    END IF;
    EXECUTE format('INSERT INTO %s (_key, _value, _headers) VALUES ($1, $2, $3)', tbl)
      USING d.key, CASE WHEN replay_dead_letters.value IS NOT NULL THEN convert_to(replay_dead_letters.value, 'UTF8') ELSE d.value END,
            jsonb_build_object('pg_flink.replay_of', format('%s/%s/%s', pipeline, d.dead_letter_partition, d.dead_letter_offset));
    INSERT INTO flink.dead_letter_replay (pipeline, dead_letter_partition, dead_letter_offset, changed)
      VALUES (pipeline, d.dead_letter_partition, d.dead_letter_offset, replay_dead_letters.value IS NOT NULL)
      ON CONFLICT ON CONSTRAINT dead_letter_replay_pkey
      DO UPDATE SET replayed_at = now(), replayed_by = current_user, changed = EXCLUDED.changed;
    n := n + 1;
  END LOOP;
  IF n = 0 AND dead_letter_partition IS NOT NULL THEN
    RAISE EXCEPTION 'pipeline "%" has no dead letter at partition % offset %', pipeline, dead_letter_partition, dead_letter_offset
      USING ERRCODE = 'undefined_object', HINT = 'See flink.dead_letters(pipeline) for the positions.';
  END IF;
  RETURN n;
END
$fn$;
COMMENT ON FUNCTION flink.replay_dead_letters(text, integer, bigint, text) IS
  'Re-produces dead letters to their source topics, in this transaction: all not yet replayed, or one (optionally with a fixed value).';

-- ------------------------------------------------------------------------------------------
-- Privileges
-- ------------------------------------------------------------------------------------------
REVOKE ALL ON flink.pipeline_metric, flink.pipeline_metric_history, flink.alert_rule, flink.alert_rule_secret,
  flink.alert, flink.alert_event, flink.dead_letter_replay FROM PUBLIC;
REVOKE ALL ON FUNCTION flink.create_alert(text, text, text, double precision, interval, text, jsonb, interval),
  flink.drop_alert(text, boolean), flink_internal.record_metrics(jsonb, interval),
  flink_internal.alert_conditions(), flink_internal.evaluate_alerts(), flink_internal.alert_payload(flink.alert_event), flink_internal.webhooks_due(integer),
  flink_internal.webhook_result(bigint, boolean, text, integer), flink_internal.dead_letter_table(text),
  flink.dead_letters(text), flink.replay_dead_letters(text, integer, bigint, text) FROM PUBLIC;
GRANT SELECT ON flink.pipeline_metrics, flink.pipeline_metrics_history, flink.alert_rules, flink.alerts,
  flink.alert_history TO flink_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON flink.alert_rule, flink.alert_rule_secret, flink.alert,
  flink.dead_letter_replay TO flink_admin;
GRANT EXECUTE ON FUNCTION flink.create_alert(text, text, text, double precision, interval, text, jsonb, interval),
  flink.drop_alert(text, boolean), flink.dead_letters(text), flink.replay_dead_letters(text, integer, bigint, text)
  TO flink_admin;

-- pg_flink install script, part: added in 0.3.0 (the same statements are in
-- sql/pg_flink--0.2.0--0.3.0.sql, after 46_observability.sql).
--
-- Flink versions: the worker records each cluster's Flink version (GET /overview); every
-- savepoint records the version that wrote it; resuming a pipeline from a savepoint of another
-- major version is refused unless the session sets pg_flink.restore_across_versions.

ALTER TABLE flink.cluster ADD COLUMN flink_version text;
ALTER TABLE flink.savepoint ADD COLUMN flink_version text;
COMMENT ON COLUMN flink.cluster.flink_version IS 'The Flink version the cluster reports (GET /overview), recorded by the worker.';
COMMENT ON COLUMN flink.savepoint.flink_version IS 'The Flink version of the cluster whose job wrote the savepoint.';

CREATE OR REPLACE VIEW flink.clusters AS
  SELECT c.name, c.gateway_url, c.rest_url, c.options, c.is_default, c.version, c.created_at, c.updated_at,
         c.dropping, c.flink_version
  FROM flink.cluster c;
COMMENT ON VIEW flink.clusters IS 'Registered Flink clusters; dropping: removed by drop_cluster(cascade => true) once its pipelines'' jobs have stopped; flink_version: what the cluster reports (recorded by the worker).';

CREATE OR REPLACE VIEW flink.savepoints AS
  SELECT s.id, s.pipeline, s.job_id, s.pipeline_version, s.path, s.trigger, s.taken_at, s.flink_version
  FROM flink.savepoint s;
COMMENT ON VIEW flink.savepoints IS 'Savepoints taken by pg_flink (when stopping with a savepoint, or flink.savepoint()), newest last, with the Flink version that wrote them.';

-- The worker reports a cluster's version (a no-op when unchanged).
CREATE FUNCTION flink_internal.cluster_version(rest_url text, flink_version text)
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  UPDATE flink.cluster c SET flink_version = cluster_version.flink_version
   WHERE c.rest_url = cluster_version.rest_url AND c.flink_version IS DISTINCT FROM cluster_version.flink_version
$fn$;

-- A savepoint records the Flink version of the cluster its job ran on.
CREATE FUNCTION flink_internal.savepoint_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF NEW.flink_version IS NULL THEN
    NEW.flink_version := (SELECT c.flink_version FROM flink.job j JOIN flink.cluster c ON c.name = j.cluster
                           WHERE j.id = NEW.job_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER savepoint_version BEFORE INSERT ON flink.savepoint
  FOR EACH ROW EXECUTE FUNCTION flink_internal.savepoint_version();

-- Refuses a savepoint written by another Flink major version than the pipeline's cluster runs
-- (state compatibility across major versions is not guaranteed), unless
-- pg_flink.restore_across_versions is on. Unknown versions (an external path, a cluster not
-- reached yet) are not refused.
CREATE FUNCTION flink_internal.check_savepoint_version(pipeline text, path text)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  sv text;
  cname text;
  cv text;
BEGIN
  IF COALESCE(current_setting('pg_flink.restore_across_versions', true), 'off') IN ('on', 'true', '1', 'yes') THEN
    RETURN;
  END IF;
  SELECT s.flink_version INTO sv FROM flink.savepoint s
   WHERE s.pipeline = check_savepoint_version.pipeline AND s.path = check_savepoint_version.path
   ORDER BY s.id DESC LIMIT 1;
  SELECT c.name, c.flink_version INTO cname, cv FROM flink.pipeline p
    JOIN flink.cluster c ON c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default)
   WHERE p.name = check_savepoint_version.pipeline
   ORDER BY c.name = p.options->>'cluster' DESC LIMIT 1;
  IF sv IS NOT NULL AND cv IS NOT NULL AND split_part(sv, '.', 1) <> split_part(cv, '.', 1) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('pipeline "%s": savepoint %s was written by Flink %s, but cluster "%s" runs Flink %s',
                       check_savepoint_version.pipeline, check_savepoint_version.path, sv, cname, cv),
      HINT = 'Flink does not guarantee state compatibility across major versions: start without from_savepoint (fresh state), or SET LOCAL pg_flink.restore_across_versions = on to try it anyway.';
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION flink_internal.set_desired(pipeline text, desired text, from_savepoint text, with_savepoint boolean, drain boolean, restart boolean, savepoint_required boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  sp text := from_savepoint;
BEGIN
  PERFORM flink_internal.require_worker();
  PERFORM 1 FROM flink.pipeline p WHERE p.name = set_desired.pipeline FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = format('pipeline "%s" does not exist', set_desired.pipeline),
      HINT = 'Create it with flink.create_pipeline(); see SELECT name FROM flink.pipelines.';
  END IF;
  IF sp = 'latest' THEN
    SELECT s.path INTO sp FROM flink.savepoint s WHERE s.pipeline = set_desired.pipeline ORDER BY s.id DESC LIMIT 1;
    IF sp IS NULL THEN
      RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
        MESSAGE = format('pipeline "%s" has no savepoint to resume from', set_desired.pipeline),
        HINT = 'Stop it with a savepoint first (flink.stop(name)), or start without from_savepoint.';
    END IF;
  END IF;
  -- A savepoint of another Flink major version is refused unless the session allows it.
  IF sp IS NOT NULL AND set_desired.desired = 'running' THEN
    PERFORM flink_internal.check_savepoint_version(set_desired.pipeline, sp);
  END IF;
  -- Starting a pipeline whose last job ended (failed, finished, cancelled) asks for a new job.
  IF set_desired.desired = 'running' AND (SELECT j.state FROM flink.job j WHERE j.pipeline = set_desired.pipeline ORDER BY j.id DESC LIMIT 1)
       IN ('FAILED', 'FINISHED', 'CANCELED') THEN
    restart := true;
  END IF;
  -- One row per pipeline, locked: concurrent start() calls serialise here and the worker sees
  -- one desired state, so they yield one job.
  INSERT INTO flink.pipeline_state AS ps (pipeline, desired, from_savepoint, stop_with_savepoint, drain, restart_requested,
                                          savepoint_required, requested_xid)
  VALUES (set_desired.pipeline, set_desired.desired, sp, with_savepoint, set_desired.drain, restart,
          set_desired.savepoint_required, txid_current())
  ON CONFLICT ON CONSTRAINT pipeline_state_pkey DO UPDATE
     SET desired = excluded.desired,
         from_savepoint = CASE WHEN excluded.desired = 'running' THEN excluded.from_savepoint ELSE ps.from_savepoint END,
         stop_with_savepoint = excluded.stop_with_savepoint, drain = excluded.drain,
         savepoint_required = excluded.savepoint_required,
         restart_requested = excluded.restart_requested OR (ps.restart_requested AND excluded.desired = 'running'),
         requested_at = now(), requested_by = session_user, requested_xid = excluded.requested_xid;
  -- Wake the worker when (and only if) this transaction commits.
  PERFORM flink_internal.wake_worker_on_commit();
  RETURN set_desired.desired;
END
$fn$;

-- A pipeline moved to another cluster (options.cluster changed, then flink.restart) is stopped
-- where its job runs, then started on the new cluster: the worker reads the pipeline's cluster
-- as the one of its newest job while that job is not over.
CREATE OR REPLACE FUNCTION flink_internal.worker_pipeline_row(p flink.pipeline) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT jsonb_build_object(
           'pipeline', p.name,
           -- Never started: desired stopped (a job with its identity, e.g. submitted by a primary
           -- whose flink.start was lost in a failover, is stopped: the catalog is the truth).
           'desired', COALESCE(ps.desired, 'stopped'), 'started', ps.pipeline IS NOT NULL,
           'from_savepoint', ps.from_savepoint,
           'stop_with_savepoint', COALESCE(ps.stop_with_savepoint, true), 'drain', COALESCE(ps.drain, false),
           'savepoint_required', COALESCE(ps.savepoint_required, false),
           'restart_requested', COALESCE(ps.restart_requested, false),
           'savepoint_requested', ps.savepoint_requested_at IS NOT NULL,
           'cluster', c.name, 'gateway_url', c.gateway_url, 'rest_url', c.rest_url,
           'job', (SELECT jsonb_build_object('id', j.id, 'job_name', j.job_name, 'flink_job_id', j.flink_job_id, 'state', j.state,
                                             'attempts', j.attempts,
                                             'updated_ago_ms', (extract(epoch FROM now() - j.updated_at) * 1000)::bigint,
                                             'flink_modified_ms', j.flink_modified_ms,
                                             'details_ago_ms', (extract(epoch FROM now() - j.details_checked_at) * 1000)::bigint,
                                             'stop_trigger', j.stop_trigger, 'stop_attempts', j.stop_attempts,
                                             'stop_due', j.stop_next_at IS NULL OR j.stop_next_at <= now(),
                                             'stop_due_in_ms', COALESCE((extract(epoch FROM j.stop_next_at - now()) * 1000)::bigint, 0),
                                             'details', jsonb_build_object('restarts', j.flink_restarts,
                                                                           'checkpoint_ms', round(extract(epoch FROM j.last_checkpoint_at) * 1000)::bigint),
                                             'savepoint_trigger', j.savepoint_trigger,
                                             'savepoint_trigger_ago_ms', (extract(epoch FROM now() - j.savepoint_triggered_at) * 1000)::bigint,
                                             'savepoint', (SELECT s.path FROM flink.savepoint s WHERE s.job_id = j.id ORDER BY s.id DESC LIMIT 1))
                   FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1))
  FROM (SELECT 1) one
  LEFT JOIN flink.pipeline_state ps ON ps.pipeline = p.name
  -- The cluster where the pipeline's newest job lives while that job is not over (a pipeline
  -- moved to another cluster is stopped there first), else the one its options name (or the
  -- default).
  LEFT JOIN LATERAL (SELECT j.cluster FROM flink.job j WHERE j.pipeline = p.name ORDER BY j.id DESC LIMIT 1) lj ON true
  LEFT JOIN LATERAL (SELECT c.name, c.gateway_url, c.rest_url FROM flink.cluster c
                     WHERE c.name = p.options->>'cluster' OR (p.options->>'cluster' IS NULL AND c.is_default)
                        OR (c.name = lj.cluster AND flink_internal.is_deployed(p.name))
                     ORDER BY c.name = lj.cluster AND flink_internal.is_deployed(p.name) DESC,
                              c.name = p.options->>'cluster' DESC LIMIT 1) c ON true
$fn$;

-- Why the worker must not resume a restart from its stop's savepoint (written by another Flink
-- major version than the cluster it starts on), or NULL.
CREATE FUNCTION flink_internal.savepoint_mismatch(pipeline text, path text, rest_url text)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT format('savepoint %s was written by Flink %s, cluster "%s" runs Flink %s: started without it (Flink does not guarantee state compatibility across major versions)',
                s.path, s.flink_version, c.name, c.flink_version)
  FROM flink.savepoint s, flink.cluster c
  WHERE s.pipeline = savepoint_mismatch.pipeline AND s.path = savepoint_mismatch.path
    AND c.rest_url = savepoint_mismatch.rest_url
    AND split_part(s.flink_version, '.', 1) <> split_part(c.flink_version, '.', 1)
  ORDER BY s.id DESC LIMIT 1
$fn$;

-- A job event that is not a state change (e.g. why a savepoint was not used).
CREATE FUNCTION flink_internal.job_note(job_id bigint, detail text)
RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
  INSERT INTO flink.job_event (job_id, pipeline, from_state, to_state, detail)
  SELECT j.id, j.pipeline, j.state, j.state, job_note.detail FROM flink.job j WHERE j.id = job_note.job_id
$fn$;

REVOKE ALL ON FUNCTION flink_internal.savepoint_mismatch(text, text, text), flink_internal.job_note(bigint, text),
  flink_internal.cluster_version(text, text), flink_internal.savepoint_version(),
  flink_internal.check_savepoint_version(text, text) FROM PUBLIC;

-- 0.3.0: datasource kinds for trying rules without real systems: datagen (a source of
-- generated rows) and print (a sink writing to the TaskManager log).
ALTER TABLE flink.datasource DROP CONSTRAINT datasource_kind_check;
ALTER TABLE flink.datasource ADD CONSTRAINT datasource_kind_check
  CHECK (kind IN ('kafka', 'elasticsearch', 'postgres', 'mysql', 'blackhole', 'datagen', 'print'));

-- flink.preview: a pipeline's query run against the data present (src/api/preview.rs; the
-- definition pgrx generates, as `cargo pgrx schema` prints it).
CREATE  FUNCTION flink."preview"(
	"pipeline" TEXT, /* &str */
	"max_rows" INT DEFAULT 20, /* i32 */
	"timeout" interval DEFAULT '10 seconds' /* pgrx::datum::interval::Interval */
) RETURNS SETOF jsonb /* pgrx::datum::json::JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'preview_wrapper';
COMMENT ON FUNCTION flink.preview(text, integer, interval) IS
  'Runs the pipeline''s query (not its INSERT) on its cluster against the data present and returns up to max_rows result rows as JSON objects, collected for at most timeout; the preview''s Flink job is cancelled before it returns. Needs flink_admin (it reads with the datasources'' secrets).';
REVOKE ALL ON FUNCTION flink.preview(text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flink.preview(text, integer, interval) TO flink_admin;

-- flink.pipeline_sinks: every sink of a pipeline (src/api/pipeline.rs; as `cargo pgrx schema`
-- prints it).
CREATE  FUNCTION flink."pipeline_sinks"(
	"name" TEXT /* &str */
) RETURNS SETOF jsonb /* pgrx::datum::json::JsonB */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'pipeline_sinks_wrapper';
COMMENT ON FUNCTION flink.pipeline_sinks(text) IS
  'Every sink of the pipeline, in order, as flink.pipeline_sink shows the first, with sink_no: each branch''s, a source''s late rows, every table a raw SQL pipeline writes. flink.expose_results(name, sink_object => object) makes any of them a table.';
COMMENT ON FUNCTION flink.pipeline_sink(text) IS
  'The sink of a pipeline as JSON: datasource, kind, object, and columns with their Flink and Postgres types (for a raw SQL pipeline the first table its INSERTs write; NULL if it writes none it declares).';
REVOKE ALL ON FUNCTION flink.pipeline_sinks(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flink.pipeline_sinks(text) TO flink_reader;

-- flink.expose_results gains sink_object (sql/install/51_expose_results.sql).
DROP FUNCTION flink.expose_results(text, text, boolean);
-- Pipeline results as tables: a foreign table over a pipeline's Kafka topic or Elasticsearch
-- index, in schema `into_schema`, named after the pipeline, with the Postgres types that hold
-- exactly what Flink writes (flink.pipeline_sink). Re-running brings an existing table up to
-- date in place (ALTER: columns added, dropped or retyped, the topic/index option), so its
-- relid, grants, comments and the views on it survive; nothing changes when nothing has.
-- with_view => true also makes the plain view <into_schema>.<pipeline>_v over it (for tools
-- that list only tables and views); both are recorded in flink.result_table.
-- sink_object => '<object>' exposes another of the pipeline's sinks (flink.pipeline_sinks: a
-- branch's, a source's late rows, a raw SQL pipeline's other tables) as <pipeline>_<object>.
CREATE FUNCTION flink.expose_results(pipeline text, into_schema text DEFAULT 'flink_results',
                                     with_view boolean DEFAULT false, sink_object text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  sink jsonb;
  base text;
  fdw text;
  srv text;
  cur_fdw text;
  opt_key text;
  want_names text[];
  want_types text[];
  tbl text;
  rel regclass;
  vname text;
  vtbl text;
  vrel regclass;
  our_view regclass;
  cur_srv text;
  cur_opt text;
  c record;
  actions text[] := '{}';
  touched text[] := '{}';
  dep record;
  g record;
  v_acl aclitem[];
  v_owner oid;
  v_comment text;
  recreate_view boolean := false;
  old_acl aclitem[];
  old_owner oid;
  comment_text text;
BEGIN
  SELECT * INTO p FROM flink.pipeline WHERE name = expose_results.pipeline;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pipeline "%" does not exist', expose_results.pipeline
      USING ERRCODE = 'undefined_object', HINT = 'See flink.pipelines for the stored pipelines.';
  END IF;
  IF sink_object IS NULL THEN
    sink := flink.pipeline_sink(p.name);
    base := p.name;
  ELSE
    SELECT s INTO sink FROM flink.pipeline_sinks(p.name) AS s WHERE s->>'object' = sink_object
     ORDER BY (s->>'sink_no')::int LIMIT 1;
    IF sink IS NULL THEN
      RAISE EXCEPTION 'pipeline "%" writes no sink with object "%"', p.name, sink_object
        USING ERRCODE = 'undefined_object',
              HINT = format('Its sinks: %s (see flink.pipeline_sinks).',
                            (SELECT string_agg(s->>'object', ', ' ORDER BY (s->>'sink_no')::int) FROM flink.pipeline_sinks(p.name) AS s));
    END IF;
    base := p.name || '_' || sink_object;
    IF octet_length(base) > 63 THEN
      RAISE EXCEPTION 'pipeline "%": the results table name "%" is longer than 63 bytes', p.name, base
        USING ERRCODE = 'name_too_long', HINT = 'Use a shorter pipeline or object name, or create the foreign table yourself.';
    END IF;
  END IF;
  IF sink IS NULL OR sink->>'kind' NOT IN ('kafka', 'elasticsearch') THEN
    RAISE EXCEPTION 'pipeline "%" does not write to Kafka or Elasticsearch (sink: %)', p.name,
      COALESCE(sink->>'kind', 'inside its raw SQL')
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Results tables exist for Kafka and Elasticsearch sinks; a Postgres sink is already a table.';
  END IF;
  vname := base || '_v';
  IF with_view AND octet_length(vname) > 63 THEN
    RAISE EXCEPTION 'pipeline "%": the view name "%" is longer than 63 bytes', p.name, vname
      USING ERRCODE = 'name_too_long',
            HINT = 'Create a view over the results table yourself, or use a shorter pipeline name.';
  END IF;
  tbl := format('%I.%I', into_schema, base);
  vtbl := format('%I.%I', into_schema, vname);

  -- The columns, metadata first and last, with the types format_type spells.
  IF sink->>'kind' = 'kafka' THEN
    fdw := 'pg_flink_kafka';
    opt_key := 'topic';
    want_names := ARRAY['_partition', '_offset', '_timestamp', '_key', '_headers'];
    want_types := ARRAY['integer', 'bigint', 'timestamp with time zone', 'text', 'jsonb'];
  ELSE
    fdw := 'pg_flink_elasticsearch';
    opt_key := 'index';
    want_names := ARRAY['_id'];
    want_types := ARRAY['text'];
  END IF;
  SELECT want_names || COALESCE(array_agg(x.c->>'name' ORDER BY x.o), '{}'),
         want_types || COALESCE(array_agg(x.c->>'pg_type' ORDER BY x.o), '{}')
    INTO want_names, want_types
    FROM jsonb_array_elements(sink->'columns') WITH ORDINALITY AS x(c, o)
   WHERE x.c->>'name' NOT LIKE '\_%';
  IF sink->>'kind' = 'kafka' THEN
    want_names := want_names || ARRAY['_error'];
    want_types := want_types || ARRAY['text'];
  ELSE
    want_names := want_names || ARRAY['_score', '_index'];
    want_types := want_types || ARRAY['double precision', 'text'];
  END IF;

  srv := 'pg_flink_' || (sink->>'datasource');
  SELECT w.fdwname INTO cur_fdw FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
   WHERE s.srvname = srv;
  IF cur_fdw IS NULL THEN
    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER %I OPTIONS (datasource %L)', srv, fdw, sink->>'datasource');
  ELSIF cur_fdw <> fdw THEN
    RAISE EXCEPTION 'server "%" exists but uses foreign-data wrapper %, not %', srv, cur_fdw, fdw
      USING ERRCODE = 'duplicate_object', HINT = 'Rename or drop that server.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = into_schema) THEN
    EXECUTE format('CREATE SCHEMA %I', into_schema);
  END IF;

  rel := to_regclass(tbl);
  IF octet_length(vname) <= 63 THEN
    vrel := to_regclass(vtbl);
  END IF;
  -- The view made by an earlier with_view => true (kept up to date even when not asked again).
  SELECT r.relid::regclass INTO our_view FROM flink.result_table r JOIN pg_class k ON k.oid = r.relid
   WHERE r.pipeline = p.name AND k.relkind = 'v' AND k.oid = vrel;
  IF with_view AND vrel IS NOT NULL AND our_view IS NULL THEN
    RAISE EXCEPTION 'relation % exists and was not made by flink.expose_results for pipeline "%"', vtbl, p.name
      USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, or call flink.expose_results without with_view.';
  END IF;

  IF rel IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = rel AND k.relkind = 'f') THEN
    RAISE EXCEPTION 'relation % exists and is not a foreign table', tbl
      USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, or pass another into_schema.';
  END IF;
  IF rel IS NOT NULL THEN
    SELECT s.srvname, (SELECT o.option_value FROM pg_options_to_table(ft.ftoptions) o WHERE o.option_name = opt_key)
      INTO cur_srv, cur_opt
      FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = rel;
    IF cur_srv <> srv THEN
      -- A foreign table cannot change server: re-create it (and its view), keeping grants.
      FOR dep IN SELECT DISTINCT v.oid::regclass AS dep_view, a.attname AS col
                     FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                     LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = rel AND v.oid <> rel AND v.oid IS DISTINCT FROM our_view
                      
                    ORDER BY 1, 2 LOOP
        RAISE EXCEPTION 'results table % must be re-created (its pipeline now writes to datasource "%", server %), but view % depends on it',
          tbl, sink->>'datasource', srv, dep.dep_view
          USING ERRCODE = 'dependent_objects_still_exist',
                HINT = format('Drop view %s, run flink.expose_results again, then re-create the view.', dep.dep_view);
      END LOOP;
      recreate_view := our_view IS NOT NULL;
      SELECT k.relacl, k.relowner INTO old_acl, old_owner FROM pg_class k WHERE k.oid = rel;
    ELSE
      -- Columns to drop, retype and add.
      FOR c IN SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, w.ty AS want
                 FROM pg_attribute a
                 LEFT JOIN unnest(want_names, want_types) AS w(name, ty) ON w.name = a.attname
                WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum LOOP
        IF c.want IS NULL THEN
          actions := actions || format('DROP COLUMN %I', c.name);
          touched := touched || c.name;
        ELSIF c.want <> c.ty THEN
          actions := actions || format('ALTER COLUMN %I TYPE %s', c.name, c.want);
          touched := touched || c.name;
        END IF;
      END LOOP;
      FOR c IN SELECT w.name, w.ty FROM unnest(want_names, want_types) WITH ORDINALITY AS w(name, ty, o)
                WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = w.name
                                     AND a.attnum > 0 AND NOT a.attisdropped)
                ORDER BY w.o LOOP
        actions := actions || format('ADD COLUMN %I %s', c.name, c.ty);
      END LOOP;
      IF cardinality(touched) > 0 THEN
        FOR dep IN SELECT DISTINCT v.oid::regclass AS dep_view, a.attname AS col
                     FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                     LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = rel AND v.oid <> rel AND v.oid IS DISTINCT FROM our_view
                      AND a.attname = ANY (touched)
                    ORDER BY 1, 2 LOOP
          RAISE EXCEPTION 'results table % cannot follow pipeline "%": view % depends on column "%", which the pipeline %',
            tbl, p.name, dep.dep_view, dep.col,
            CASE WHEN dep.col = ANY (want_names) THEN 'now writes as ' || want_types[array_position(want_names, dep.col::text)]
                 ELSE 'no longer writes' END
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'Postgres cannot drop or change the type of a column a view uses.',
                  HINT = format('Drop view %s (or stop it from using column "%s"), run flink.expose_results again, then re-create the view.', dep.dep_view, dep.col);
        END LOOP;
        recreate_view := our_view IS NOT NULL;
      END IF;
    END IF;
  END IF;

  -- Our own view: dropped before the table changes under it, re-created after, grants kept.
  IF recreate_view THEN
    FOR dep IN SELECT DISTINCT v.oid::regclass AS dep_view, a.attname AS col
                     FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                     LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = our_view AND v.oid <> our_view AND v.oid IS DISTINCT FROM NULL::oid
                      
                    ORDER BY 1, 2 LOOP
      RAISE EXCEPTION 'results view % must be re-created for pipeline "%", but view % depends on it', our_view, p.name, dep.dep_view
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = format('Drop view %s, run flink.expose_results again, then re-create it.', dep.dep_view);
    END LOOP;
    SELECT k.relacl, k.relowner, obj_description(k.oid, 'pg_class') INTO v_acl, v_owner, v_comment
      FROM pg_class k WHERE k.oid = our_view;
    EXECUTE format('DROP VIEW %s', our_view);
    our_view := NULL;
  END IF;

  IF rel IS NOT NULL AND cur_srv <> srv THEN
    EXECUTE format('DROP FOREIGN TABLE %s', rel);
    rel := NULL;
  END IF;
  IF rel IS NULL THEN
    EXECUTE format('CREATE FOREIGN TABLE %s (%s) SERVER %I OPTIONS (%s %L)', tbl,
                   (SELECT string_agg(format('%I %s', w.name, w.ty), ', ' ORDER BY w.o)
                      FROM unnest(want_names, want_types) WITH ORDINALITY AS w(name, ty, o)),
                   srv, opt_key, sink->>'object');
    rel := to_regclass(tbl);
    IF old_acl IS NOT NULL THEN
      FOR g IN SELECT x.grantee, x.privilege_type, x.is_grantable FROM aclexplode(old_acl) x
                WHERE x.grantee <> old_owner ORDER BY x.grantee, x.privilege_type LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, rel,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
    END IF;
  ELSE
    IF cur_opt IS NULL THEN
      actions := actions || format('OPTIONS (ADD %I %L)', opt_key, sink->>'object');
    ELSIF cur_opt <> sink->>'object' THEN
      actions := actions || format('OPTIONS (SET %I %L)', opt_key, sink->>'object');
    END IF;
    IF cardinality(actions) > 0 THEN
      EXECUTE format('ALTER FOREIGN TABLE %s %s', rel, array_to_string(actions, ', '));
    END IF;
  END IF;
  comment_text := format('Results of pipeline %s (%s %s), created by flink.expose_results()', p.name, sink->>'kind', sink->>'object');
  IF obj_description(rel, 'pg_class') IS DISTINCT FROM comment_text THEN
    EXECUTE format('COMMENT ON FOREIGN TABLE %s IS %L', rel, comment_text);
  END IF;
  DELETE FROM flink.result_table r WHERE r.pipeline = p.name AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = r.relid);
  INSERT INTO flink.result_table (pipeline, relid) VALUES (p.name, rel) ON CONFLICT DO NOTHING;

  -- The view: every column of the table, in its order. Columns only added: CREATE OR REPLACE
  -- (the view keeps its grants and dependents); anything else re-created it above.
  IF with_view OR our_view IS NOT NULL OR recreate_view THEN
    IF our_view IS NULL OR cardinality(actions) > 0 THEN
      EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s', vtbl,
                     (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                       WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped),
                     rel);
    END IF;
    IF our_view IS NULL THEN
      our_view := to_regclass(vtbl);
      IF v_acl IS NOT NULL THEN
        FOR g IN SELECT x.grantee, x.privilege_type, x.is_grantable FROM aclexplode(v_acl) x
                WHERE x.grantee <> v_owner ORDER BY x.grantee, x.privilege_type LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, our_view,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
      END IF;
      EXECUTE format('COMMENT ON VIEW %s IS %L', our_view,
                     COALESCE(v_comment, format('Results of pipeline %s: view over %s, created by flink.expose_results()', p.name, rel)));
      INSERT INTO flink.result_table (pipeline, relid) VALUES (p.name, our_view) ON CONFLICT DO NOTHING;
    END IF;
  END IF;
  RETURN rel;
END
$fn$;
COMMENT ON FUNCTION flink.expose_results(text, text, boolean, text) IS
  'Creates, or brings up to date in place (keeping grants, comments and dependent views), a foreign table named after the pipeline in into_schema over its Kafka topic or Elasticsearch index, with the pipeline''s output columns in the Postgres types that hold what Flink writes, and the metadata columns; with_view => true also creates the view <into_schema>.<pipeline>_v over it; sink_object => another of its sinks (flink.pipeline_sinks) as <pipeline>_<object>. Returns the foreign table.';
REVOKE ALL ON FUNCTION flink.expose_results(text, text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flink.expose_results(text, text, boolean, text) TO flink_admin;

-- flink.wait(p, 'stopped') also returns when the pipeline is stopped and its job had already ended.
CREATE OR REPLACE FUNCTION flink.wait(pipeline text, state text, timeout interval DEFAULT '60 seconds')
RETURNS text
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  deadline timestamptz := clock_timestamp() + timeout;
  cur flink.job;
BEGIN
  IF upper(state) NOT IN ('RUNNING', 'STOPPED', 'FAILED', 'FINISHED', 'CANCELED') THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
      MESSAGE = format('flink.wait: state "%s" is not one to wait for', state),
      HINT = 'Wait for RUNNING, STOPPED, FAILED, FINISHED or CANCELED.';
  END IF;
  -- The worker acts on committed requests only: waiting for our own uncommitted one would
  -- wait out the whole timeout.
  IF EXISTS (SELECT 1 FROM flink.pipeline_state ps WHERE ps.pipeline = wait.pipeline
              AND ps.requested_xid = txid_current_if_assigned()) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('flink.wait: pipeline "%s" was started or stopped in this transaction, which has not committed', wait.pipeline),
      HINT = 'COMMIT first: the worker acts only on committed changes. Then call flink.wait in a new transaction.';
  END IF;
  LOOP
    SELECT * INTO cur FROM flink.job j WHERE j.pipeline = wait.pipeline ORDER BY j.id DESC LIMIT 1;
    IF cur.state = upper(wait.state) THEN
      RETURN cur.state;
    END IF;
    -- Stopped: a job that had already ended (a bounded job FINISHED, or CANCELED/FAILED) stays
    -- as it ended when its pipeline is stopped; that is stopped too.
    IF upper(wait.state) = 'STOPPED' AND cur.state IN ('FINISHED', 'CANCELED', 'FAILED')
       AND EXISTS (SELECT 1 FROM flink.pipeline_state ps WHERE ps.pipeline = wait.pipeline AND ps.desired = 'stopped') THEN
      RETURN cur.state;
    END IF;
    -- A failed job is final; a failed submission is retried by the worker, so keep waiting.
    IF upper(wait.state) = 'RUNNING' AND cur.state = 'FAILED' THEN
      RAISE EXCEPTION USING ERRCODE = 'external_routine_exception',
        MESSAGE = format('pipeline "%s" is %s: %s', wait.pipeline, cur.state, COALESCE(cur.last_error, 'no error text')),
        HINT = 'See flink.job_events for the transitions; fix the cause and call flink.restart().';
    END IF;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION USING ERRCODE = 'query_canceled',
        MESSAGE = format('pipeline "%s" did not reach %s within %s (now %s%s)', wait.pipeline, upper(wait.state), timeout,
                         COALESCE(cur.state, 'no job'), COALESCE(': ' || cur.last_error, '')),
        HINT = 'Check flink.pipeline_status and flink.job_events; is the worker running (SELECT * FROM pg_stat_activity WHERE backend_type = ''pg_flink worker'')?';
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$fn$;
COMMENT ON FUNCTION flink.wait(text, text, interval) IS
  'Blocks (cancellably) until the pipeline''s job reaches the state (for STOPPED also: the pipeline is stopped and its job ended otherwise, returned as it ended); fails with the last error if it fails.';

-- flink.test_cluster: every cluster when no name is given, with its Flink version (the row type
-- gains cluster and flink_version, so both functions are re-created).
DROP FUNCTION flink.test_cluster(text);
DROP FUNCTION flink_internal.test_cluster(text, text, text, integer);
CREATE  FUNCTION flink_internal."test_cluster"(
	"name" TEXT, /* &str */
	"gateway_url" TEXT, /* &str */
	"rest_url" TEXT, /* &str */
	"timeout_ms" INT DEFAULT 10000 /* i32 */
) RETURNS TABLE (
	"ok" bool,  /* bool */
	"flink_version" TEXT,  /* core::option::Option<alloc::string::String> */
	"latency_ms" double precision,  /* f64 */
	"detail" TEXT  /* alloc::string::String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'test_cluster_wrapper';
CREATE FUNCTION flink.test_cluster(name text DEFAULT NULL)
RETURNS TABLE (cluster text, ok boolean, flink_version text, latency_ms double precision, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  c flink.cluster;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM flink.cluster x WHERE test_cluster.name IS NULL OR x.name = test_cluster.name) THEN
    RAISE EXCEPTION USING ERRCODE = 'undefined_object',
      MESSAGE = CASE WHEN test_cluster.name IS NULL THEN 'no cluster is registered'
                     ELSE format('cluster "%s" does not exist', test_cluster.name) END,
      HINT = 'Register one with flink.register_cluster(); see SELECT name FROM flink.clusters.';
  END IF;
  -- Every cluster (the default first) when no name is given; one row each, never an error for an
  -- unreachable one (ok = false, detail says why).
  FOR c IN SELECT * FROM flink.cluster x WHERE test_cluster.name IS NULL OR x.name = test_cluster.name
            ORDER BY x.is_default DESC, x.name LOOP
    RETURN QUERY SELECT c.name, t.ok, t.flink_version, t.latency_ms, t.detail
      FROM flink_internal.test_cluster(c.name, c.gateway_url, c.rest_url, (c.options->>'timeout_ms')::integer) t;
  END LOOP;
END
$fn$;
COMMENT ON FUNCTION flink.test_cluster(text) IS
  'Checks every registered cluster (the default first), or the one named: JobManager overview and SQL Gateway info, with the Flink version the JobManager reports. Never raises for an unreachable cluster: ok = false and detail says why.';
REVOKE ALL ON FUNCTION flink.test_cluster(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION flink_internal.test_cluster(text, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION flink.test_cluster(text) TO flink_admin;
