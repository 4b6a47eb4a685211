// Reads the YAML documents of one source. Empty documents (a trailing `---`, a file of comments)
// are skipped; YAML errors become issues at their line:col and their document is dropped.
import type { YAMLError } from 'yaml';
import { yaml } from '../util/lazy-yaml.js';
import type { ManifestIssue } from '../errors.js';
import { parseFast } from './fast-yaml.js';
import { fastLocator, yamlLocator, type Locator } from './locate.js';

/** One file (or stdin) holding manifests. */
export interface SourceFile {
  /** How issues name it: the -f argument joined with the path below it, relative to cwd when under it; `-` for stdin. */
  display: string;
  /** Absolute path, or `-` for stdin. */
  path: string;
  /** Folder that relative paths in its manifests are resolved against. */
  dir: string;
  /** Index of the -f argument it was found through. */
  root: number;
  text: string;
}

/** A YAML document that was read without errors; its value is not validated yet. */
export interface ParsedDocument {
  source: SourceFile;
  /** 1-based line where the document's content starts. */
  line: number;
  data: unknown;
  locator: Locator;
}

export interface ParseResult {
  documents: ParsedDocument[];
  issues: ManifestIssue[];
}

/** `yaml`'s limit on alias expansion, against "billion laughs" documents. */
const MAX_ALIAS_COUNT = 100;

export interface ParseOptions {
  /** Skip the fast reader (tests compare both readers). */
  fast?: boolean;
}

export function parseSource(source: SourceFile, options: ParseOptions = {}): ParseResult {
  const fast = options.fast === false ? undefined : parseFast(source.text);
  if (fast) {
    const documents = fast
      .filter((doc) => doc.data !== null)
      .map((doc) => ({ source, line: doc.line, data: doc.data, locator: fastLocator(doc.positions) }));
    return { documents, issues: [] };
  }
  return parseWithYaml(source);
}

function parseWithYaml(source: SourceFile): ParseResult {
  const { LineCounter, parseAllDocuments } = yaml();
  const lineCounter = new LineCounter();
  const documents: ParsedDocument[] = [];
  const issues: ManifestIssue[] = [];
  const issue = (offset: number, code: string, message: string, hint: string): void => {
    const { line, col } = lineCounter.linePos(offset);
    issues.push({ code, file: source.display, line, col, message, hint });
  };
  for (const doc of parseAllDocuments(source.text, { lineCounter, prettyErrors: false, uniqueKeys: true })) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const [code, message, hint] = describeYamlError(error, source.text);
        issue(error.pos[0], code, message, hint);
      }
      continue;
    }
    const start = doc.contents?.range[0] ?? 0;
    let data: unknown;
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (error) {
      const message = (error as Error).message;
      const hint = /excessive alias count/i.test(message)
        ? 'expand the aliases by hand or use fewer of them'
        : 'define the anchor (&name) before the alias, in the same document';
      issue(start, 'yaml.alias', `YAML alias error: ${message}`, hint);
      continue;
    }
    if (data === null || data === undefined) continue;
    documents.push({ source, line: lineCounter.linePos(start).line, data, locator: yamlLocator(doc, lineCounter) });
  }
  return { documents, issues };
}

const YAML_HINTS: Record<string, string> = {
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  BAD_INDENT: 'indent nested fields further than their parent, with spaces, and align siblings',
  MISSING_CHAR: 'close the quote or bracket that was opened',
  MULTILINE_IMPLICIT_KEY: 'put each `key: value` on one line, or quote the value',
  BLOCK_AS_IMPLICIT_KEY: 'put `key:` on its own line before a nested block',
  UNEXPECTED_TOKEN: 'quote values that contain YAML punctuation such as `: `, ` #`, `[`, `{` or `*`',
};

function describeYamlError(error: YAMLError, text: string): [code: string, message: string, hint: string] {
  const message = error.message.split('\n')[0] as string;
  if (error.code === 'DUPLICATE_KEY') {
    const lineEnd = text.indexOf('\n', error.pos[0]);
    const rest = text.slice(error.pos[0], lineEnd === -1 ? text.length : lineEnd);
    const key = (/^(.*?):(?: |$)/.exec(rest)?.[1] ?? rest).trim();
    return [
      'yaml.duplicate-key',
      `duplicate key \`${key}\`: ${message}`,
      `a key may appear once per mapping: remove or merge the repeated \`${key}\``,
    ];
  }
  return ['yaml.syntax', `YAML syntax error: ${message}`, YAML_HINTS[error.code] ?? 'fix the YAML syntax at this position'];
}
