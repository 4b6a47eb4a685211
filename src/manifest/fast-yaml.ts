// A fast reader for the plain subset of YAML that manifests are written in. Why: the `yaml`
// package costs ~0.3 ms per manifest (most of it building a full document model), and 10,000
// manifests must load in well under a second.
// It declines (returns undefined) on anything outside the subset — anchors, aliases, tags, block
// scalars, multi-line scalars or flow collections, escapes, tabs, directives, non-string keys,
// duplicate keys, anything odd — and the caller then reads the file with `yaml`, which stays the
// authority on YAML and on every syntax error. Plain scalars are resolved by yaml's own
// core-schema tags (fast-yaml-scalars.ts). Positions (line:col of every node) are computed only
// when asked for, by reading that one document again. test/unit/manifest-fast-yaml.test.ts
// checks values and positions against `yaml`.
import {
  checkLineEnd,
  checkPlainBody,
  checkPlainStart,
  declined,
  DOUBLE_QUOTED_KEY,
  isSeqLine,
  plainKeyLength,
  resolvePlain,
  SINGLE_QUOTED_KEY,
  skipSpaces,
} from './fast-yaml-scalars.js';

/** Where a node starts (1-based), where its key starts, and its children's positions. */
export class NodePos {
  /** The key's position for a mapping value; the node's own position otherwise. */
  keyLine: number;
  keyCol: number;
  /** An empty value (`key:` with nothing after it) is located at its key. */
  empty = false;
  constructor(
    public line: number,
    public col: number,
    public children: Map<string, NodePos> | NodePos[] | undefined = undefined,
  ) {
    this.keyLine = line;
    this.keyCol = col;
  }
}

export interface FastDocument {
  data: unknown;
  /** 1-based line where the document's content starts. */
  line: number;
  /** Positions of the document's nodes, computed on first use. */
  positions(): NodePos;
}

// Tabs, CR, control characters, BOM and Unicode line separators are left to `yaml`.
// eslint-disable-next-line no-control-regex
const UNSUPPORTED_CHARS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\ufeff]/;
const MAX_DEPTH = 64;

/** The content lines of one document: line number, indentation, text after the indentation. */
interface Lines {
  no: number[];
  indent: number[];
  text: string[];
}

/**
 * Reads one document's lines into a value. With `track`, also records positions (left in `pos`
 * after each node); without, allocates nothing but the value.
 */
class Reader {
  private p = 0;
  /** Position of the node read last (when tracking). */
  private pos: NodePos | undefined;
  /** Set by matchKey: the key, and the length of `key: ` in the text. */
  private key = '';
  private keyLength = 0;
  /** Set by inline(), flow(), flowItem() and quoted(): the index after the value just read. */
  private end = 0;

  constructor(
    private readonly lines: Lines,
    private readonly track: boolean,
  ) {}

  document(): [unknown, NodePos | undefined] {
    const data = this.block(this.lines.indent[0] as number, 0);
    if (this.p !== this.lines.text.length) throw declined;
    return [data, this.pos];
  }

  private node(line: number, col: number, children?: Map<string, NodePos> | NodePos[]): NodePos | undefined {
    return this.track ? new NodePos(line, col, children) : undefined;
  }

  /** Matches `key: ` at the start of `text`, setting key and keyLength. */
  private matchKey(text: string): boolean {
    const length = plainKeyLength(text);
    let m: RegExpExecArray | null = null;
    if (length > 0) {
      const value = resolvePlain(text.slice(0, text.indexOf(':')));
      if (typeof value !== 'string') throw declined;
      this.key = value;
    } else if ((m = DOUBLE_QUOTED_KEY.exec(text))) {
      this.key = m[1] as string;
    } else if ((m = SINGLE_QUOTED_KEY.exec(text))) {
      this.key = (m[1] as string).replaceAll("''", "'");
    } else {
      return false;
    }
    if (this.key === '__proto__') throw declined;
    this.keyLength = m ? m[0].length : length;
    return true;
  }

  /** A block mapping or sequence whose first line is the current one, at `indent`. */
  private block(indent: number, depth: number): unknown {
    if (depth > MAX_DEPTH || this.lines.indent[this.p] !== indent) throw declined;
    return isSeqLine(this.lines.text[this.p] as string) ? this.sequence(indent, depth) : this.mapping(indent, depth);
  }

  private mapping(indent: number, depth: number): unknown {
    const { no, text: texts, indent: indents } = this.lines;
    const data: Record<string, unknown> = {};
    const children = this.track ? new Map<string, NodePos>() : undefined;
    const position = this.node(no[this.p] as number, indent + 1, children);
    while (this.p < texts.length) {
      const lineIndent = indents[this.p] as number;
      if (lineIndent < indent) break;
      if (lineIndent > indent) throw declined;
      const text = texts[this.p] as string;
      if (!this.matchKey(text)) {
        if (isSeqLine(text)) break; // a parent sequence at this indent continues
        throw declined;
      }
      const name = this.key;
      if (Object.hasOwn(data, name)) throw declined;
      const lineNo = no[this.p] as number;
      this.p++;
      data[name] = this.entryValue(text, lineNo, indent, this.keyLength, depth, true);
      if (children) {
        const valuePos = this.pos as NodePos;
        if (valuePos.empty) {
          valuePos.line = lineNo;
          valuePos.col = indent + 1;
        }
        valuePos.keyLine = lineNo;
        valuePos.keyCol = indent + 1;
        children.set(name, valuePos);
      }
    }
    this.pos = position;
    return data;
  }

  private sequence(indent: number, depth: number): unknown {
    const { no, text: texts, indent: indents } = this.lines;
    const data: unknown[] = [];
    const children: NodePos[] | undefined = this.track ? [] : undefined;
    const position = this.node(no[this.p] as number, indent + 1, children);
    while (this.p < texts.length) {
      const lineIndent = indents[this.p] as number;
      if (lineIndent < indent) break;
      if (lineIndent > indent) throw declined;
      const text = texts[this.p] as string;
      if (!isSeqLine(text)) break; // the parent mapping continues at this indent
      const start = skipSpaces(text, 1);
      const rest = text.slice(start);
      if (rest === '' || rest[0] === '#') {
        // `-` alone: the item is the block below it (an empty item is left to yaml).
        const nextIndent = indents[this.p + 1];
        if (nextIndent === undefined || nextIndent <= indent) throw declined;
        this.p++;
        data.push(this.block(nextIndent, depth + 1));
      } else if (isSeqLine(rest)) {
        throw declined;
      } else if (this.matchKey(rest)) {
        // A compact mapping: its keys line up with the first one, after `- `.
        texts[this.p] = rest;
        indents[this.p] = indent + start;
        data.push(this.mapping(indent + start, depth + 1));
      } else {
        const lineNo = no[this.p] as number;
        this.p++;
        data.push(this.entryValue(text, lineNo, indent, start, depth, false));
      }
      children?.push(this.pos as NodePos);
    }
    this.pos = position;
    return data;
  }

  /** The value after `key:` or `- ` (from `offset` in `text`), or the block below it. */
  private entryValue(text: string, lineNo: number, indent: number, offset: number, depth: number, inMapping: boolean): unknown {
    const { indent: indents, text: texts } = this.lines;
    if (offset >= text.length || text[offset] === '#') {
      const nextIndent = indents[this.p];
      if (nextIndent !== undefined && nextIndent > indent) return this.block(nextIndent, depth + 1);
      // `key:` followed by `- item` lines at the key's own indent.
      if (inMapping && nextIndent === indent && isSeqLine(texts[this.p] as string)) return this.sequence(indent, depth + 1);
      if (this.track) {
        this.pos = new NodePos(lineNo, indent + offset + 1);
        this.pos.empty = true;
      }
      return null;
    }
    const value = this.inline(text, offset, lineNo, indent, depth);
    checkLineEnd(text, this.end);
    const nextIndent = indents[this.p];
    if (nextIndent !== undefined && nextIndent > indent) throw declined; // a continuation: multi-line scalar
    return value;
  }

  /** A single-line value at text[i] (quoted, flow collection or plain); sets `end`. */
  private inline(text: string, i: number, lineNo: number, indent: number, depth: number): unknown {
    const c = text[i];
    if (c === '[' || c === '{') return this.flow(text, i, lineNo, indent, depth + 1);
    this.pos = this.node(lineNo, indent + i + 1);
    if (c === '"' || c === "'") return this.quoted(text, i);
    checkPlainStart(text, i, false);
    const comment = text.indexOf(' #', i);
    let end = comment === -1 ? text.length : comment;
    while (text.charCodeAt(end - 1) === 32) end--;
    checkPlainBody(text, i, end, false);
    this.end = end;
    return resolvePlain(text.slice(i, end));
  }

  /** A flow sequence or mapping that opens at text[i] and closes on the same line; sets `end`. */
  private flow(text: string, i: number, lineNo: number, indent: number, depth: number): unknown {
    if (depth > MAX_DEPTH) throw declined;
    const isSeq = text[i] === '[';
    const close = isSeq ? ']' : '}';
    const seqData: unknown[] = [];
    const mapData: Record<string, unknown> = {};
    const seqPos: NodePos[] | undefined = this.track && isSeq ? [] : undefined;
    const mapPos = this.track && !isSeq ? new Map<string, NodePos>() : undefined;
    const position = this.node(lineNo, indent + i + 1, seqPos ?? mapPos);
    let j = skipSpaces(text, i + 1);
    while (text[j] !== close) {
      if (isSeq) {
        seqData.push(this.flowItem(text, j, lineNo, indent, depth));
        seqPos?.push(this.pos as NodePos);
      } else {
        const keyCol = indent + j + 1;
        const rest = text.slice(j);
        if (!this.matchKey(rest) || this.keyLength === rest.length) throw declined;
        const name = this.key;
        if (Object.hasOwn(mapData, name)) throw declined;
        mapData[name] = this.flowItem(text, j + this.keyLength, lineNo, indent, depth);
        if (mapPos) {
          const valuePos = this.pos as NodePos;
          valuePos.keyLine = lineNo;
          valuePos.keyCol = keyCol;
          mapPos.set(name, valuePos);
        }
      }
      j = skipSpaces(text, this.end);
      if (text[j] === close) break;
      if (text[j] !== ',') throw declined;
      j = skipSpaces(text, j + 1);
      if (text[j] === close || text[j] === ',') throw declined; // trailing or empty entry
    }
    this.pos = position;
    this.end = j + 1;
    return isSeq ? seqData : mapData;
  }

  private flowItem(text: string, i: number, lineNo: number, indent: number, depth: number): unknown {
    const c = text[i];
    if (c === undefined) throw declined;
    if (c === '[' || c === '{') return this.flow(text, i, lineNo, indent, depth + 1);
    this.pos = this.node(lineNo, indent + i + 1);
    if (c === '"' || c === "'") return this.quoted(text, i);
    checkPlainStart(text, i, true);
    let end = i;
    while (end < text.length) {
      const ch = text[end];
      if (ch === ',' || ch === '[' || ch === ']' || ch === '{' || ch === '}') break;
      if (ch === '#' && text[end - 1] === ' ') throw declined; // a comment inside the collection
      end++;
    }
    this.end = end;
    while (text.charCodeAt(end - 1) === 32) end--;
    if (end === i) throw declined;
    checkPlainBody(text, i, end, true);
    return resolvePlain(text.slice(i, end));
  }

  /** A single-line quoted scalar at text[i]; sets `end` after the closing quote. */
  private quoted(text: string, i: number): string {
    if (text[i] === '"') {
      const close = text.indexOf('"', i + 1);
      if (close === -1) throw declined;
      const value = text.slice(i + 1, close);
      if (value.includes('\\')) throw declined;
      this.end = close + 1;
      return value;
    }
    let value = '';
    let j = i + 1;
    while (true) {
      const close = text.indexOf("'", j);
      if (close === -1) throw declined;
      if (text[close + 1] === "'") {
        value += text.slice(j, close + 1);
        j = close + 2;
        continue;
      }
      this.end = close + 1;
      return value + text.slice(j, close);
    }
  }
}

/** Called per document with its content lines and where its text lies (to read it again). */
type OnSegment = (lines: Lines, from: number, to: number, firstLine: number) => void;

/**
 * Splits `text` into documents at `---` lines, keeping content lines (not blank or comment), and
 * hands each to `onSegment` as soon as it ends, so only one document's lines are alive at a time.
 */
function segments(text: string, firstLine: number, onSegment: OnSegment): void {
  let lines: Lines = { no: [], indent: [], text: [] };
  let from = 0;
  let segmentLine = firstLine;
  let start = 0;
  for (let no = firstLine; start <= text.length; no++) {
    const newline = text.indexOf('\n', start);
    const lineEnd = newline === -1 ? text.length : newline;
    let end = lineEnd;
    while (end > start && text.charCodeAt(end - 1) === 32) end--;
    let indent = start;
    while (indent < end && text.charCodeAt(indent) === 32) indent++;
    if (indent < end && text[indent] !== '#') {
      if (indent === start && text.startsWith('---', start)) {
        const full = text.slice(start, end);
        if (full !== '---' && !/^--- +#/.test(full)) throw declined;
        if (lines.text.length > 0) onSegment(lines, from, start, segmentLine);
        lines = { no: [], indent: [], text: [] };
        from = lineEnd + 1;
        segmentLine = no + 1;
      } else {
        if (indent === start && (text.startsWith('...', start) || text[start] === '%')) throw declined;
        lines.no.push(no);
        lines.indent.push(indent - start);
        lines.text.push(text.slice(indent, end));
      }
    }
    start = lineEnd + 1;
  }
  if (lines.text.length > 0) onSegment(lines, from, text.length, segmentLine);
}

/** Reads the document at text[from, to) again, recording positions. */
function positionsOf(text: string, from: number, to: number, firstLine: number): NodePos {
  let positions: NodePos | undefined;
  segments(text.slice(from, to), firstLine, (lines) => {
    positions = new Reader(lines, true).document()[1];
  });
  return positions as NodePos;
}

/**
 * Reads every non-empty document of `text`, or returns undefined when the text uses anything
 * outside the subset (the caller must then use `yaml`).
 */
export function parseFast(text: string): FastDocument[] | undefined {
  if (UNSUPPORTED_CHARS.test(text)) return undefined;
  const documents: FastDocument[] = [];
  try {
    segments(text, 1, (lines, from, to, firstLine) => {
      const [data] = new Reader(lines, false).document();
      let positions: NodePos | undefined;
      documents.push({
        data,
        line: lines.no[0] as number,
        positions: () => (positions ??= positionsOf(text, from, to, firstLine)),
      });
    });
  } catch (error) {
    if (error === declined) return undefined;
    throw error;
  }
  return documents;
}
