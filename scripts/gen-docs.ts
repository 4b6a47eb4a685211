// Generates docs/manifest.md, the field reference, from schemas/process.schema.json so the docs
// cannot drift from the format. `--check` fails when the checked-in file is stale (npm test).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { writeOrCheck } from './generated.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const schemaPath = `${root}schemas/process.schema.json`;
const outPath = `${root}docs/manifest.md`;

interface Node {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  additionalProperties?: Node | boolean;
  anyOf?: Node[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  title?: string;
}

const schema = JSON.parse(await readFile(schemaPath, 'utf8')) as Node & { definitions: Record<string, Node> };
const resolve = (node: Node): Node => (node.$ref ? (schema.definitions[node.$ref.split('/').pop() as string] as Node) : node);

function typeOf(node: Node): string {
  const n = resolve(node);
  if (n.const !== undefined) return `\`${JSON.stringify(n.const)}\``;
  if (n.enum) return n.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (n.anyOf) return n.anyOf.map(typeOf).join(' or ');
  if (n.type === 'array' && n.items) return `list of ${typeOf(n.items)}`;
  if (n.type === 'object' && !n.properties && n.additionalProperties && typeof n.additionalProperties === 'object') return `map of ${typeOf(n.additionalProperties)}`;
  if (n.properties) return n.title ? `object (${n.title})` : 'object';
  const base = Array.isArray(n.type) ? n.type.join(' or ') : (n.type ?? 'any');
  const range: string[] = [];
  if (n.minimum !== undefined) range.push(`≥ ${n.minimum}`);
  if (n.exclusiveMinimum !== undefined) range.push(`> ${n.exclusiveMinimum}`);
  if (n.maximum !== undefined) range.push(`≤ ${n.maximum}`);
  return range.length ? `${base} (${range.join(', ')})` : base;
}

const lines: string[] = [
  '# Manifest reference',
  '',
  `Generated from [schemas/process.schema.json](../schemas/process.schema.json) by \`scripts/gen-docs.ts\`; do not edit by hand.`,
  '',
  schema.description ?? '',
  '',
  '| field | type | default | description |',
  '| --- | --- | --- | --- |',
];

function walk(node: Node, path: string, depth: number): void {
  const n = resolve(node);
  const props = n.properties ?? {};
  for (const [key, child] of Object.entries(props)) {
    const c = resolve(child);
    const full = path ? `${path}.${key}` : key;
    const required = (n.required ?? []).includes(key) ? ' **(required)**' : '';
    const fallback = child.default ?? c.default;
    const shownDefault = fallback === undefined || (typeof fallback === 'object' && Object.keys(fallback as object).length === 0) ? '' : `\`${JSON.stringify(fallback)}\``;
    const description = (child.description ?? c.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
    lines.push(`| \`${full}\`${required} | ${typeOf(child)} | ${shownDefault} | ${description} |`);
    if (depth < 8) {
      if (c.properties) walk(c, full, depth + 1);
      else if (c.type === 'array' && c.items && resolve(c.items).properties) walk(resolve(c.items), `${full}[]`, depth + 1);
    }
  }
}
walk(schema, '', 0);
lines.push(
  '',
  'A probe (`spec.probes.startup`, `.readiness`, `.liveness`) takes exactly one of `exec`, `http`, `tcp`, or, for a startup probe of an exec process, `notify`.',
  '',
  '**Readiness pushed by the process** (`startup: {notify: {fd: 3}}`, like systemd\'s `Type=notify`, s6\'s notification-fd or dinit\'s pipefd): pm opens descriptor `fd` (3–9, default 3) in the process, and names it in `PM_READY_FD`. The process writes a newline there once it is ready (`echo READY=1 >&3` in a shell; anything before the newline is ignored) and may then close it. pm takes the line the moment it is written: no probe period to wait out, no connection or fork per check. No line within `failureThreshold × periodSeconds` of the start is a failed startup (event `StartupFailed`), and the process is restarted under its restart policy. The descriptor is a file of pm\'s state directory (`STATE/ready/NAME`, emptied at each start), not a pipe: a daemon restarted before the line is written still sees it, and the process never gets SIGPIPE. A program that only speaks sd_notify\'s datagram socket (`NOTIFY_SOCKET`) needs a wrapper that writes the line.',
  '',
);
const generated = lines.join('\n');

await writeOrCheck(outPath, generated, 'npm run gen:docs');
