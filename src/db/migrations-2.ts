// Migration 2: where a shipped row came from. pm writes audit and events to local files first (the
// durable spool) and a Shipper forwards them; a row carries the spool file and the byte offset of
// its line, and a unique index on (host, spool, spool_offset) turns a second delivery of the same
// line (a crash between COMMIT and saving the local cursor, or a COMMIT whose answer was lost) into
// a no-op: every line reaches the table exactly once. Rows written otherwise leave both NULL.
import type { Migration } from './migrations.js';

const SPOOL_SQL = `
ALTER TABLE pm.audit ADD COLUMN spool text, ADD COLUMN spool_offset bigint;
ALTER TABLE pm.events ADD COLUMN spool text, ADD COLUMN spool_offset bigint;
CREATE UNIQUE INDEX audit_spool_line ON pm.audit (host, spool, spool_offset) WHERE spool IS NOT NULL;
CREATE UNIQUE INDEX events_spool_line ON pm.events (host, spool, spool_offset) WHERE spool IS NOT NULL;

COMMENT ON COLUMN pm.audit.spool IS 'The local spool file the row was shipped from: audit:<digest of the file''s first line>, a new value after the file is rotated or truncated. NULL for rows not shipped from a spool.';
COMMENT ON COLUMN pm.audit.spool_offset IS 'Byte offset of the row''s line in its spool file; unique with host and spool, so a line is never stored twice.';
COMMENT ON COLUMN pm.events.spool IS 'The local spool file the row was shipped from: events:<digest of the file''s first line>, a new value after the file is rotated or truncated. NULL for rows not shipped from a spool.';
COMMENT ON COLUMN pm.events.spool_offset IS 'Byte offset of the row''s line in its spool file; unique with host and spool, so a line is never stored twice.';
COMMENT ON INDEX pm.audit_spool_line IS 'One row per spool line: a line shipped again after a crash is ignored (INSERT … ON CONFLICT DO NOTHING).';
COMMENT ON INDEX pm.events_spool_line IS 'One row per spool line: a line shipped again after a crash is ignored (INSERT … ON CONFLICT DO NOTHING).';
`;

export const SPOOL_MIGRATION: Migration = { version: 2, name: 'spool_lines', sql: SPOOL_SQL };
