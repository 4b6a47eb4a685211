// Reads the config file: YAML, one mapping of known keys. Each value keeps the line:col it came from
// so every later complaint about it points into the file.
import { readFile } from 'node:fs/promises';
import { yaml } from '../util/lazy-yaml.js';
import type { ConfigIssue } from './errors.js';
import type { ConfigKey, KeySpec } from './schema.js';

export interface FileValue {
  value: unknown;
  line: number;
  col: number;
}

export interface ParsedConfigFile {
  values: Partial<Record<ConfigKey, FileValue>>;
  issues: ConfigIssue[];
}

/** The file's text, or undefined when it does not exist (other read errors throw). */
export async function readConfigText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** `stateDir` for `state_dir`, `StateDir`, `state-dir`: the likely meant key, if any. */
function suggest(name: string, specs: readonly KeySpec[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  return specs.find((s) => squash(s.key) === squash(name))?.key;
}

export function parseConfigFile(path: string, text: string, specs: readonly KeySpec[]): ParsedConfigFile {
  const { LineCounter, isMap, isNode, isScalar, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number): { line: number; col: number } => lineCounter.linePos(offset);
  const where = (offset: number): string => {
    const { line, col } = at(offset);
    return `file ${path}:${line}:${col}`;
  };
  const issues: ConfigIssue[] = doc.errors.map((e) => ({ where: where(e.pos[0]), message: e.message.split('\n')[0] ?? e.message }));
  const values: ParsedConfigFile['values'] = {};
  if (issues.length > 0 || doc.contents === null) return { values, issues };
  if (!isMap(doc.contents)) {
    return { values, issues: [{ where: where(doc.contents.range?.[0] ?? 0), message: 'the config file must be a mapping of key: value' }] };
  }
  const known = new Map(specs.map((s) => [s.key as string, s]));
  for (const pair of doc.contents.items) {
    const keyNode = pair.key;
    const offset = isScalar(keyNode) ? (keyNode.range?.[0] ?? 0) : 0;
    const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
    const spec = known.get(name);
    if (!spec) {
      const meant = suggest(name, specs);
      issues.push({ where: where(offset), message: `unknown key "${name}"${meant ? ` (did you mean "${meant}"?)` : ''}` });
      continue;
    }
    const valueNode = pair.value;
    const valueOffset = isNode(valueNode) ? (valueNode.range?.[0] ?? offset) : offset;
    const value: unknown = isNode(valueNode) ? valueNode.toJS(doc) : null;
    values[spec.key] = { value, ...at(valueOffset) };
  }
  return { values, issues };
}
