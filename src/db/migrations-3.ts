// Migration 3: several pm daemons sharing one database, and per-process history shipped like audit
// and events.
//
// A fleet shares one pm.flags table, and a flag names a process, not a machine: the daemon that
// claims a row must be one that declares the process, or a daemon that does not would mark another
// host's flag `ignored`. pm.daemons is each daemon's registration (host name, the processes it
// declares, when it last drained flags); a daemon claims a row addressed to it (pm.flags.host), or
// one addressed to no host whose process it declares, or, to keep the "unknown process → ignored"
// promise, one whose process no registered daemon declares. See src/flags/postgres.ts.
//
// pm.history gets the spool identity of migration 2, so its rows, written locally first
// (STATE/history.jsonl), reach the table exactly once.
import type { Migration } from './migrations.js';

const FLEET_SQL = `
ALTER TABLE pm.flags ADD COLUMN host text, ADD COLUMN handled_by text;
COMMENT ON COLUMN pm.flags.host IS 'The host whose pm should handle the row (its hostName, see pm.daemons). NULL: any pm that declares the process; when none does, the row is ignored.';
COMMENT ON COLUMN pm.flags.handled_by IS 'The host of the pm that handled the row; NULL while pending. Written by pm only.';

-- Re-addressing a pending row to another host must wake the daemons as re-targeting it does.
DROP TRIGGER flags_notify ON pm.flags;
CREATE TRIGGER flags_notify
  AFTER INSERT OR UPDATE OF action, process, host ON pm.flags
  FOR EACH ROW WHEN (NEW.handled_at IS NULL)
  EXECUTE FUNCTION pm.flags_notify();
COMMENT ON TRIGGER flags_notify ON pm.flags IS 'Wakes the pm daemons (NOTIFY pm_flags, payload: id) for each new, re-targeted or re-addressed pending row.';

CREATE TABLE pm.daemons (
  host         text        PRIMARY KEY,
  instance     text        NOT NULL,
  pid          integer     NOT NULL,
  version      text        NOT NULL,
  started_at   timestamptz NOT NULL,
  seen_at      timestamptz NOT NULL,
  poll_seconds real        NOT NULL,
  processes    text[]      NOT NULL DEFAULT '{}'
);
CREATE INDEX daemons_processes ON pm.daemons USING gin (processes);

COMMENT ON TABLE pm.daemons IS 'One row per pm daemon that uses this database, written by that daemon each time it reads flags. A flag addressed to no host goes to a daemon that declares its process. Delete the row of a host that is gone for good: while it stays, flags for the processes it declared wait for it.';
COMMENT ON COLUMN pm.daemons.host IS 'The daemon''s hostName (default: the machine''s host name).';
COMMENT ON COLUMN pm.daemons.instance IS 'Random id of the daemon''s current run: a second daemon registering under the same host name is told apart by it.';
COMMENT ON COLUMN pm.daemons.pid IS 'Process id of the daemon on its host.';
COMMENT ON COLUMN pm.daemons.version IS 'pm version of the daemon.';
COMMENT ON COLUMN pm.daemons.started_at IS 'When this run of the daemon started.';
COMMENT ON COLUMN pm.daemons.seen_at IS 'When it last read flags: at least every poll_seconds while it runs and reaches the database.';
COMMENT ON COLUMN pm.daemons.poll_seconds IS 'Its flagPollSeconds.';
COMMENT ON COLUMN pm.daemons.processes IS 'The processes its manifests declare, sorted.';

ALTER TABLE pm.history ADD COLUMN spool text, ADD COLUMN spool_offset bigint;
CREATE UNIQUE INDEX history_spool_line ON pm.history (host, spool, spool_offset) WHERE spool IS NOT NULL;
COMMENT ON COLUMN pm.history.spool IS 'The local spool file the row was shipped from: history:<digest of the file''s first line>, a new value after the file is rotated or truncated. NULL for rows not shipped from a spool.';
COMMENT ON COLUMN pm.history.spool_offset IS 'Byte offset of the row''s line in its spool file; unique with host and spool, so a line is never stored twice.';
COMMENT ON INDEX pm.history_spool_line IS 'One row per spool line: a line shipped again after a crash is ignored (INSERT … ON CONFLICT DO NOTHING).';
COMMENT ON COLUMN pm.history.kind IS 'start, exit, stop, restart, breaker or flag (see docs/database.md for each kind''s detail).';
`;

export const FLEET_MIGRATION: Migration = { version: 3, name: 'fleet_and_history_spool', sql: FLEET_SQL };
