//! Versioned schema migrations, run on connect.
//!
//! Each migration runs in its own transaction under a transaction-scoped advisory lock keyed by
//! the schema name, so any number of processes may start at once: the first applies what is
//! missing, the others wait and then find nothing left to do.

use tokio_postgres::Client;

use crate::error::backend;
use rollcall_store::StoreError;

/// The schema version this crate writes and expects.
pub const SCHEMA_VERSION: i32 = 2;

/// One migration: version, description, SQL with `{schema}` standing for the schema name.
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events table",
        sql: r#"
CREATE TABLE {schema}.events (
    -- The global order is (tx, position): see the crate docs for why not position alone.
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    position bigint GENERATED ALWAYS AS IDENTITY,
    stream text NOT NULL,
    revision bigint NOT NULL CHECK (revision >= 0),
    id uuid NOT NULL,
    event_type text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 0),
    -- bytea keeps the payload's exact bytes; jsonb would normalise them.
    data bytea NOT NULL,
    metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (tx, position),
    CONSTRAINT events_stream_revision_key UNIQUE (stream, revision),
    CONSTRAINT events_id_key UNIQUE (id)
);
"#,
    },
    Migration {
        version: 2,
        description: "append function",
        sql: r#"
-- Appends a batch of appends (distinct streams) in one transaction.
-- Per append: stream, expected revision (-1 any, -2 no stream, -3 stream exists, n >= 0 exact),
-- the 1-based index of its first event in the event arrays and its event count.
-- Outcomes: 0 written, 1 idempotent retry, 2 wrong expected revision, 3 ids reused.
CREATE FUNCTION {schema}.append_events(
    p_streams text[],
    p_expected bigint[],
    p_first integer[],
    p_count integer[],
    p_ids uuid[],
    p_types text[],
    p_versions integer[],
    p_data bytea[],
    p_metadata text[]
) RETURNS TABLE (out_index integer, out_outcome integer, out_revision bigint, out_tx text, out_position bigint)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_n integer := coalesce(cardinality(p_streams), 0);
    v_key bigint;
    v_i integer;
    v_stream text;
    v_ids uuid[];
    v_found bigint;
    v_same bigint;
    v_shifts bigint;
    v_last bigint;
    v_ok boolean;
    v_acc integer[] := '{}';
    v_base bigint[] := '{}';
BEGIN
    -- A stream's events follow its revisions in the global (tx, position) order only if this
    -- transaction is given its id after it holds the locks of all its streams.
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'an append must be the first write of its transaction: append first, then write other rows'
            USING ERRCODE = '25000';
    END IF;
    IF (SELECT count(DISTINCT s.name) FROM unnest(p_streams) AS s(name)) <> v_n THEN
        RAISE EXCEPTION 'one append batch names a stream twice' USING ERRCODE = '22023';
    END IF;
    -- Locks in key order, so batches over several streams cannot deadlock. Held until commit.
    FOR v_key IN
        SELECT DISTINCT hashtextextended('{schema}.' || s.name, 0) FROM unnest(p_streams) AS s(name) ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;

    FOR v_i IN 1 .. v_n LOOP
        v_stream := p_streams[v_i];
        v_ids := p_ids[p_first[v_i] : p_first[v_i] + p_count[v_i] - 1];
        SELECT count(e.id),
               count(e.id) FILTER (WHERE e.stream = v_stream),
               count(DISTINCT e.revision - x.ord) FILTER (WHERE e.stream = v_stream)
          INTO v_found, v_same, v_shifts
          FROM unnest(v_ids) WITH ORDINALITY AS x(id, ord)
          LEFT JOIN {schema}.events AS e ON e.id = x.id;
        IF v_found > 0 THEN
            out_index := v_i;
            IF v_found = p_count[v_i] AND v_same = p_count[v_i] AND v_shifts = 1 THEN
                -- A retry of an append that is already stored: answer as the original did.
                SELECT 1, e.revision, e.tx::text, e.position
                  INTO out_outcome, out_revision, out_tx, out_position
                  FROM {schema}.events AS e WHERE e.id = v_ids[p_count[v_i]];
            ELSE
                out_outcome := 3;
                out_revision := NULL;
                out_tx := NULL;
                out_position := NULL;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT max(e.revision) INTO v_last FROM {schema}.events AS e WHERE e.stream = v_stream;
        v_ok := CASE p_expected[v_i]
            WHEN -1 THEN true
            WHEN -2 THEN v_last IS NULL
            WHEN -3 THEN v_last IS NOT NULL
            ELSE v_last IS NOT NULL AND v_last = p_expected[v_i]
        END;
        IF NOT v_ok THEN
            out_index := v_i;
            out_outcome := 2;
            out_revision := v_last;
            out_tx := NULL;
            out_position := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        v_acc := v_acc || v_i;
        v_base := v_base || (coalesce(v_last, -1) + 1);
    END LOOP;

    IF cardinality(v_acc) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH acc AS (
        SELECT a.idx, a.base, p_streams[a.idx] AS stream, p_first[a.idx] AS first, p_count[a.idx] AS cnt
          FROM unnest(v_acc, v_base) AS a(idx, base)
    ), wanted AS (
        SELECT acc.stream, acc.base + (g.n - acc.first) AS revision, g.n
          FROM acc CROSS JOIN LATERAL generate_series(acc.first, acc.first + acc.cnt - 1) AS g(n)
    ), ins AS (
        INSERT INTO {schema}.events (stream, revision, id, event_type, schema_version, data, metadata)
        SELECT w.stream, w.revision, ev.id, ev.event_type, ev.schema_version, ev.data, ev.metadata::jsonb
          FROM unnest(p_ids, p_types, p_versions, p_data, p_metadata)
               WITH ORDINALITY AS ev(id, event_type, schema_version, data, metadata, n)
          JOIN wanted AS w ON w.n = ev.n
         ORDER BY ev.n
        RETURNING stream, revision, tx, position
    )
    SELECT acc.idx, 0, ins.revision, ins.tx::text, ins.position
      FROM ins JOIN acc ON acc.stream = ins.stream AND ins.revision = acc.base + acc.cnt - 1;
END
$fn$;
"#,
    },
];

/// Creates the schema if needed and applies every missing migration in order.
///
/// Returns the versions this call applied (empty when the schema was already current).
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<i32>, StoreError> {
    let lock_key = format!("rollcall-migrate:{schema}");
    let lock = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

    let tx = client.transaction().await.map_err(backend)?;
    tx.execute(lock, &[&lock_key]).await.map_err(backend)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version integer PRIMARY KEY,
             description text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;

    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(lock, &[&lock_key]).await.map_err(backend)?;
        let done = tx
            .query_opt(&format!("SELECT 1 FROM {schema}.schema_migrations WHERE version = $1"), &[&migration.version])
            .await
            .map_err(backend)?
            .is_some();
        if done {
            tx.commit().await.map_err(backend)?;
            continue;
        }
        tx.batch_execute(&migration.sql.replace("{schema}", schema)).await.map_err(|e| {
            StoreError::Backend(format!(
                "migration {} ({}) of schema {schema} failed: {}",
                migration.version,
                migration.description,
                crate::error::describe(&e)
            ))
        })?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"),
            &[&migration.version, &migration.description],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        applied.push(migration.version);
    }

    let newest: Option<i32> = client
        .query_one(&format!("SELECT max(version) FROM {schema}.schema_migrations"), &[])
        .await
        .map_err(backend)?
        .get(0);
    if let Some(newest) = newest.filter(|v| *v > SCHEMA_VERSION) {
        return Err(StoreError::Invalid(format!(
            "schema {schema} is at version {newest}, newer than this build knows ({SCHEMA_VERSION}): upgrade rollcall"
        )));
    }
    Ok(applied)
}
