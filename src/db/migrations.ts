// pm's database schema, as numbered migrations kept in code (so they ship in dist/ with no files to
// copy). Each runs once, in its own transaction, through `pm db migrate` (see migrate.ts). Never edit
// a migration that has been released: add the next one. Every name is schema-qualified (pm.…), so
// no migration depends on the connection's search_path.
import { SPOOL_MIGRATION } from './migrations-2.js';
import { FLEET_MIGRATION } from './migrations-3.js';

export interface Migration {
  /** 1, 2, 3 …: applied in order; the highest applied is the database's schema version. */
  readonly version: number;
  /** A short snake_case label, recorded in pm.schema_migrations. */
  readonly name: string;
  /** One or more statements, run as one script (no parameters: it is fixed text). */
  readonly sql: string;
}

/**
 * Schema pm and its version table: what migrate() needs before it can read a version. Idempotent.
 * CREATE SCHEMA IF NOT EXISTS would still demand CREATE on the database when the schema exists
 * (a DBA may have created it for a role without that right), hence the check first.
 */
export const BOOTSTRAP_SQL = `
DO $bootstrap$
BEGIN
  IF to_regnamespace('pm') IS NULL THEN
    CREATE SCHEMA pm;
  END IF;
END
$bootstrap$;

CREATE TABLE IF NOT EXISTS pm.schema_migrations (
  version    integer     PRIMARY KEY,
  name       text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by text        NOT NULL DEFAULT current_user
);
`;

const INITIAL_SQL = `
${BOOTSTRAP_SQL}
COMMENT ON SCHEMA pm IS 'pm, the process manager: flags other systems write (pm.flags), and pm''s own audit log, events and per-process history. Changed only by pm db migrate.';
COMMENT ON TABLE pm.schema_migrations IS 'Migrations pm db migrate has applied; the highest version is the schema version.';
COMMENT ON COLUMN pm.schema_migrations.version IS 'Migration number, from pm''s source (src/db/migrations.ts).';
COMMENT ON COLUMN pm.schema_migrations.name IS 'Migration label.';
COMMENT ON COLUMN pm.schema_migrations.applied_at IS 'When it was applied.';
COMMENT ON COLUMN pm.schema_migrations.applied_by IS 'The database role that applied it.';

-- Flags: requests from any system, handled by the pm daemon.
CREATE TABLE pm.flags (
  id           bigserial   PRIMARY KEY,
  process      text        NOT NULL,
  action       text        NOT NULL,
  requested_by text        NOT NULL DEFAULT current_user,
  requested_at timestamptz NOT NULL DEFAULT now(),
  handled_at   timestamptz,
  result       text,
  message      text
);
-- Deliberately no CHECK on action or process: a bad row from another team's code must neither fail
-- their INSERT nor block other rows. pm validates each row and marks bad ones result = 'ignored'.
CREATE INDEX flags_pending ON pm.flags (id) WHERE handled_at IS NULL;

COMMENT ON TABLE pm.flags IS 'Requests to pm: INSERT INTO pm.flags (process, action) VALUES (''api'', ''restart''); pm reacts within milliseconds (NOTIFY pm_flags) and records the outcome in handled_at, result and message. Rows naming an unknown process or action are marked result = ''ignored''.';
COMMENT ON COLUMN pm.flags.id IS 'Row id; also the payload of the NOTIFY on channel pm_flags.';
COMMENT ON COLUMN pm.flags.process IS 'Name of the process, as declared in pm''s manifests (metadata.name).';
COMMENT ON COLUMN pm.flags.action IS 'restart (one-shot), pause (held stopped until resume), resume, or reset (close the circuit breaker). Any other value is ignored with a message.';
COMMENT ON COLUMN pm.flags.requested_by IS 'Who asked: defaults to the inserting database role; write a person or system name if you have one.';
COMMENT ON COLUMN pm.flags.requested_at IS 'When it was asked.';
COMMENT ON COLUMN pm.flags.handled_at IS 'When pm handled the row; NULL while pending. Written by pm only.';
COMMENT ON COLUMN pm.flags.result IS 'Outcome, written by pm: ok (done), ignored (unknown process or action: nothing done) or failed (the action itself failed; see message).';
COMMENT ON COLUMN pm.flags.message IS 'Detail of the outcome, written by pm (why a row was ignored or an action failed).';

CREATE FUNCTION pm.flags_notify() RETURNS trigger
LANGUAGE plpgsql AS $flags_notify$
BEGIN
  PERFORM pg_notify('pm_flags', NEW.id::text);
  RETURN NULL;
END
$flags_notify$;
COMMENT ON FUNCTION pm.flags_notify() IS 'Trigger function of pm.flags: NOTIFY pm_flags with the row id, so the pm daemon handles it at once.';

-- Pending rows only: pm marking a row handled must not wake pm again.
CREATE TRIGGER flags_notify
  AFTER INSERT OR UPDATE OF action, process ON pm.flags
  FOR EACH ROW WHEN (NEW.handled_at IS NULL)
  EXECUTE FUNCTION pm.flags_notify();
COMMENT ON TRIGGER flags_notify ON pm.flags IS 'Wakes the pm daemon (NOTIFY pm_flags, payload: id) for each new or re-targeted pending row.';

-- Audit: every action pm took or was asked to take, with its outcome.
CREATE TABLE pm.audit (
  id          bigserial   PRIMARY KEY,
  time        timestamptz NOT NULL,
  host        text        NOT NULL,
  actor       text        NOT NULL,
  command     text        NOT NULL,
  action      text        NOT NULL,
  process     text        NOT NULL,
  reason      text        NOT NULL,
  result      text        NOT NULL,
  duration_ms integer     NOT NULL,
  error       text
);
CREATE INDEX audit_process_time ON pm.audit (process, time);

COMMENT ON TABLE pm.audit IS 'pm''s audit log: one row per action on a process, written by pm (also after an outage, from its local spool). Read with pm audit.';
COMMENT ON COLUMN pm.audit.id IS 'Row id, rising in the order pm wrote the rows.';
COMMENT ON COLUMN pm.audit.time IS 'When the action began (the pm host''s clock).';
COMMENT ON COLUMN pm.audit.host IS 'Host name of the pm that acted.';
COMMENT ON COLUMN pm.audit.actor IS 'Who caused it: a user, a flag''s requested_by, or pm itself.';
COMMENT ON COLUMN pm.audit.command IS 'The pm command or source: apply, restart, daemon, flag …';
COMMENT ON COLUMN pm.audit.action IS 'What was done: start, stop, restart, pause, resume …';
COMMENT ON COLUMN pm.audit.process IS 'Name of the process acted on.';
COMMENT ON COLUMN pm.audit.reason IS 'Why pm decided on the action.';
COMMENT ON COLUMN pm.audit.result IS 'Outcome of the action, e.g. ok or failed.';
COMMENT ON COLUMN pm.audit.duration_ms IS 'How long the action took, in milliseconds.';
COMMENT ON COLUMN pm.audit.error IS 'The failure, when result is failed; NULL otherwise.';

-- Events: what the daemon noticed (probe failures, crashes, reloads, database outages …).
CREATE TABLE pm.events (
  id       bigserial   PRIMARY KEY,
  time     timestamptz NOT NULL,
  host     text        NOT NULL,
  type     text        NOT NULL,
  process  text,
  severity text        NOT NULL,
  message  text        NOT NULL
);
CREATE INDEX events_process_time ON pm.events (process, time);

COMMENT ON TABLE pm.events IS 'Events the pm daemon recorded, as pm events shows them. Written by pm.';
COMMENT ON COLUMN pm.events.id IS 'Row id, rising in the order pm wrote the rows.';
COMMENT ON COLUMN pm.events.time IS 'When it happened (the pm host''s clock).';
COMMENT ON COLUMN pm.events.host IS 'Host name of the pm that recorded it.';
COMMENT ON COLUMN pm.events.type IS 'Event type, e.g. ProbeFailed, Exited, FlagIgnored.';
COMMENT ON COLUMN pm.events.process IS 'The process concerned; NULL for daemon-wide events.';
COMMENT ON COLUMN pm.events.severity IS 'info, warning or error.';
COMMENT ON COLUMN pm.events.message IS 'Human-readable description.';

-- History: each process's life, for pm get and post-mortems.
CREATE TABLE pm.history (
  id      bigserial   PRIMARY KEY,
  time    timestamptz NOT NULL,
  host    text        NOT NULL,
  process text        NOT NULL,
  kind    text        NOT NULL,
  detail  jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX history_process_time ON pm.history (process, time);

COMMENT ON TABLE pm.history IS 'Per-process history written by pm: starts, exits (with codes), restarts, circuit-breaker transitions, flags handled.';
COMMENT ON COLUMN pm.history.id IS 'Row id, rising in the order pm wrote the rows.';
COMMENT ON COLUMN pm.history.time IS 'When it happened (the pm host''s clock).';
COMMENT ON COLUMN pm.history.host IS 'Host name of the pm that recorded it.';
COMMENT ON COLUMN pm.history.process IS 'Name of the process.';
COMMENT ON COLUMN pm.history.kind IS 'start, exit, restart, breaker or flag.';
COMMENT ON COLUMN pm.history.detail IS 'Kind-specific fields as JSON, e.g. {"code": 1} for an exit, {"flag": 42} for a flag.';
`;

export const MIGRATIONS: readonly Migration[] = [{ version: 1, name: 'initial', sql: INITIAL_SQL }, SPOOL_MIGRATION, FLEET_MIGRATION];

/** The schema version this pm knows and needs. */
export const LATEST_VERSION: number = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);
