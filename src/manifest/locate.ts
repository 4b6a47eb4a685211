// Maps a path inside a manifest (from an ajv instancePath or a semantic check) back to line:col in
// its file. Only called when there is something to report, so the happy path never pays for it.
import type { Document, LineCounter, Node } from 'yaml';
import { yaml } from '../util/lazy-yaml.js';
import type { NodePos } from './fast-yaml.js';

/** Keys of mappings and indexes of lists, from the document root. */
export type FieldPath = readonly (string | number)[];

export interface Position {
  line: number;
  col: number;
}

export interface Locator {
  /**
   * Position of the node at `path`, or of its key with `at: 'key'`. A path that does not exist in
   * the file (a default ajv filled in, a missing field) falls back to its nearest existing ancestor.
   * An empty value (`key:` with nothing after it) is located at its key.
   */
  locate(path: FieldPath, at?: 'value' | 'key'): Position;
}

/** Locates nodes of a document read by `yaml`. */
export function yamlLocator(doc: Document.Parsed, lineCounter: LineCounter): Locator {
  const { isAlias, isMap, isScalar, isSeq } = yaml();
  const position = (node: Node): Position => {
    const offset = node.range?.[0] ?? 0;
    return lineCounter.linePos(offset);
  };
  return {
    locate(path, at = 'value') {
      let node = doc.contents as Node | null;
      let key: Node | undefined;
      let found = 0;
      for (const segment of path) {
        if (node && isAlias(node)) node = node.resolve(doc) ?? null;
        if (isMap(node)) {
          const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
          if (!pair) break;
          key = pair.key as Node;
          node = (pair.value as Node | null) ?? key;
        } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] !== undefined) {
          key = undefined;
          node = node.items[segment] as Node;
        } else {
          break;
        }
        found++;
      }
      if (!node) return { line: 1, col: 1 };
      const complete = found === path.length;
      if (key && complete && at === 'key') return position(key);
      const empty = isScalar(node) && node.range != null && node.range[0] === node.range[1];
      if (key && empty) return position(key);
      return position(node);
    },
  };
}

/** Locates nodes of a document read by the fast reader; `positions` is only called when needed. */
export function fastLocator(positions: () => NodePos): Locator {
  return {
    locate(path, at = 'value') {
      let node = positions();
      let found = 0;
      for (const segment of path) {
        const children = node.children;
        const next = Array.isArray(children)
          ? typeof segment === 'number'
            ? children[segment]
            : undefined
          : children?.get(String(segment));
        if (!next) break;
        node = next;
        found++;
      }
      if (found === path.length && found > 0 && at === 'key') return { line: node.keyLine, col: node.keyCol };
      return { line: node.line, col: node.col };
    },
  };
}

/** Turns an ajv instancePath (`/spec/ports/0/port`) into a path, with list indexes as numbers. */
export function parsePointer(pointer: string, data: unknown): (string | number)[] {
  if (pointer === '') return [];
  const path: (string | number)[] = [];
  let value = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(value)) {
      const index = Number(segment);
      path.push(index);
      value = value[index];
    } else {
      path.push(segment);
      value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[segment] : undefined;
    }
  }
  return path;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `spec.exec.command[0]`, `metadata.labels["app.kubernetes.io/name"]`; the root is `the document`. */
export function formatPath(path: FieldPath): string {
  if (path.length === 0) return 'the document';
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}
