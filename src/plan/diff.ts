// Field-level difference between the last-applied manifest and the desired one, as a JSON Patch
// (RFC 6902) plus a readable path and the old value, and which fields need the process restarted.
import jsonPatch from 'fast-json-patch';
import type { ProcessManifest } from '../manifest/types.js';

export interface FieldChange {
  op: 'add' | 'remove' | 'replace';
  /** JSON Pointer into the manifest, as in the JSON Patch. */
  pointer: string;
  /** Readable path: spec.exec.command[1], spec.exec.env.PORT. */
  path: string;
  from?: unknown;
  to?: unknown;
  /** True when the running process must be restarted for the change to take effect. */
  needsRestart: boolean;
}

/**
 * Fields that shape the running process itself. Everything else (labels, probes, restart policy,
 * stop settings, dependencies, ports) is pm's own bookkeeping and takes effect without a restart.
 */
const RESTART_PREFIXES = ['/spec/driver', '/spec/exec', '/spec/docker', '/spec/systemd', '/spec/resources'];
/**
 * A unit pm writes holds its stop settings itself (KillSignal=, TimeoutStopSec=): for it, a stop
 * change is a new unit file, in force from its next run.
 */
const UNIT_FILE_PREFIXES = [...RESTART_PREFIXES, '/spec/stop'];

function restartPrefixes(desired: ProcessManifest): readonly string[] {
  return desired.spec.driver === 'systemd' && desired.spec.systemd?.command !== undefined ? UNIT_FILE_PREFIXES : RESTART_PREFIXES;
}

type Comparable = { metadata: { labels: Record<string, string> }; spec: ProcessManifest['spec'] };

function comparable(m: ProcessManifest): Comparable {
  return { metadata: { labels: m.metadata.labels }, spec: m.spec };
}

export function diffManifests(previous: ProcessManifest, desired: ProcessManifest): FieldChange[] {
  const before = comparable(previous);
  const after = comparable(desired);
  const ops = jsonPatch.compare(before, after);
  const prefixes = restartPrefixes(desired);
  const changes: FieldChange[] = [];
  for (const op of ops) {
    if (op.op !== 'add' && op.op !== 'remove' && op.op !== 'replace') continue;
    const change: FieldChange = {
      op: op.op,
      pointer: op.path,
      path: readablePath(op.path, op.op === 'remove' ? before : after),
      needsRestart: prefixes.some((p) => op.path === p || op.path.startsWith(`${p}/`)),
    };
    if (op.op !== 'add') change.from = valueAt(before, op.path);
    if (op.op !== 'remove') change.to = op.value;
    changes.push(change);
  }
  return changes.sort((a, b) => (a.pointer < b.pointer ? -1 : a.pointer > b.pointer ? 1 : 0));
}

function segments(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function valueAt(root: unknown, pointer: string): unknown {
  let node: unknown = root;
  for (const key of segments(pointer)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** `/spec/exec/command/1` → `spec.exec.command[1]`; keys that are not identifiers are quoted. */
function readablePath(pointer: string, root: unknown): string {
  let node: unknown = root;
  let out = '';
  for (const key of segments(pointer)) {
    if (Array.isArray(node)) out += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
    node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  return out;
}
