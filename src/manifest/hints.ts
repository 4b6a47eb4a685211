// Turns one ajv error into a message that names the field and a one-line hint that says what to
// write instead. The wording is for someone editing YAML, not for someone reading JSON Schema.
import type { ErrorObject } from 'ajv';
import { formatPath, type FieldPath } from './locate.js';

export interface Described {
  /** Where to point: the failing value, the offending key, or the object missing a field. */
  path: FieldPath;
  at: 'value' | 'key';
  message: string;
  hint: string;
}

type SchemaNode = Record<string, unknown>;

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  object: 'an object (a mapping of fields)',
  array: 'a list',
  null: 'null',
};

export function describeValueType(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return Number.isInteger(value) ? 'a number' : 'a fractional number';
  if (typeof value === 'boolean') return 'a boolean';
  return 'a string';
}

function show(value: unknown): string {
  if (typeof value === 'string') {
    const text = JSON.stringify(value);
    return text.length > 50 ? `${text.slice(0, 47)}..."` : text;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return describeValueType(value);
}

function list(words: readonly string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/** Optimal string alignment distance, ignoring case: typos, swapped letters, wrong case. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const rows: number[][] = Array.from({ length: s.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= t.length; j++) (rows[0] as number[])[j] = j;
  for (let i = 1; i <= s.length; i++) {
    const row = rows[i] as number[];
    const prev = rows[i - 1] as number[];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        best = Math.min(best, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = best;
    }
  }
  return (rows[s.length] as number[])[t.length] as number;
}

/** The closest allowed name, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

const NAME_RULE =
  "names are DNS-1123 labels: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/** A valid name close to `value` (`My_API` → `my-api`), if there is one. */
export function suggestName(value: string): string | undefined {
  const name = value
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '');
  return name === '' || name === value ? undefined : name;
}

function nameHint(value: unknown): string {
  const suggestion = typeof value === 'string' ? suggestName(value) : undefined;
  return suggestion ? `${NAME_RULE}, e.g. "${suggestion}"` : NAME_RULE;
}

const ENV_NAME_RULE = 'environment variable names use letters, digits and _, and do not start with a digit';

function range(schema: SchemaNode, integer: boolean): string {
  const kind = integer ? 'an integer' : 'a number';
  const { minimum, maximum, exclusiveMinimum } = schema;
  if (typeof minimum === 'number' && typeof maximum === 'number') return `use ${kind} from ${minimum} to ${maximum}`;
  if (typeof exclusiveMinimum === 'number') return `use ${kind} greater than ${exclusiveMinimum}`;
  if (typeof minimum === 'number') return `use ${kind} of at least ${minimum}`;
  if (typeof maximum === 'number') return `use ${kind} of at most ${maximum}`;
  return `use ${kind} in the allowed range`;
}

/**
 * `path` is the error's instancePath as a path; `detail` is the inner error of a propertyNames
 * failure (why the key is invalid).
 */
export function describe(error: ErrorObject, path: FieldPath, detail?: ErrorObject): Described {
  const field = formatPath(path);
  const parent = (error.parentSchema ?? {}) as SchemaNode;
  const value: unknown = error.data;
  const params = error.params as Record<string, unknown>;
  const at = (message: string, hint: string): Described => ({ path, at: 'value', message, hint });

  switch (error.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      const full = formatPath([...path, missing]);
      const property = ((parent.properties ?? {}) as Record<string, SchemaNode>)[missing];
      const hint = property?.const !== undefined ? `add \`${missing}: ${String(property.const)}\`` : `add \`${full}\``;
      return at(`missing required field ${full}`, hint);
    }
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((parent.properties ?? {}) as SchemaNode);
      const guess = closest(key, allowed);
      const hint = guess
        ? `remove \`${key}\` — did you mean \`${guess}\`?`
        : `remove \`${key}\`; allowed here: ${allowed.join(', ')}`;
      return { path: [...path, key], at: 'key', message: `unknown field ${formatPath([...path, key])}`, hint };
    }
    case 'propertyNames': {
      const key = String(params.propertyName);
      const isEnv = path[path.length - 1] === 'env';
      const tooLong = detail?.keyword === 'maxLength';
      const what = isEnv ? 'environment variable name' : path[path.length - 1] === 'labels' ? 'label key' : 'key';
      const hint = isEnv
        ? ENV_NAME_RULE
        : tooLong
          ? `use at most ${String((detail.params as Record<string, unknown>).limit)} characters`
          : "label keys use letters, digits, '-', '_', '.' and '/', and start and end with a letter or digit";
      return { path: [...path, key], at: 'key', message: `${field} has an invalid ${what} ${JSON.stringify(key)}`, hint };
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      return at(`${field} is ${show(value)}, which is not allowed`, `use one of: ${allowed.join(', ')}`);
    }
    case 'const': {
      const expected = String(params.allowedValue);
      const key = path[path.length - 1] ?? field;
      return at(`${field} must be ${expected}, got ${show(value)}`, `set ${String(key)}: ${expected}`);
    }
    case 'type': {
      const types = String(params.type).split(',');
      const expected = list(types.map((type) => TYPE_WORDS[type] ?? type));
      const got = describeValueType(value);
      let hint = `expected ${expected}, got ${got}`;
      if (types.includes('string') && (typeof value === 'number' || typeof value === 'boolean')) {
        hint += `: quote it, as in "${String(value)}"`;
      } else if (types.includes('array') && typeof value === 'string') {
        hint += /^[^'"\\]+$/.test(value) ? `: write it as a list, as in [${value.trim().split(/\s+/).join(', ')}]` : ': write it as a list';
      } else if ((types.includes('number') || types.includes('integer')) && typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) {
        hint += `: remove the quotes, as in ${value.trim()}`;
      } else if (value === null) {
        hint += ': fill it in, or remove the key';
      }
      return at(`${field} must be ${expected}`, hint);
    }
    case 'pattern':
      if (parent.title === 'ProcessName') return at(`${field} ${show(value)} is not a valid name`, nameHint(value));
      if (params.pattern === '^/') return at(`${field} must start with /`, `write the path with a leading /, as in /${String(value)}`);
      return at(`${field} ${show(value)} does not match ${String(params.pattern)}`, `change it to match ${String(params.pattern)}`);
    case 'minLength':
      if (parent.title === 'ProcessName') return at(`${field} must not be empty`, nameHint(value));
      return at(`${field} must not be empty`, 'give it a value, or remove the key');
    case 'maxLength':
      return at(
        `${field} is ${String(value).length} characters long, more than ${String(params.limit)}`,
        parent.title === 'ProcessName' ? nameHint(value) : `use at most ${String(params.limit)} characters`,
      );
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const integer = parent.type === 'integer';
      return at(`${field} is ${show(value)}, out of range`, range(parent, integer));
    }
    case 'minItems':
      if (path[path.length - 1] === 'command') {
        return at(`${field} must not be empty`, 'list the program and its arguments, as in [node, server.js]');
      }
      return at(`${field} must have at least ${String(params.limit)} item(s)`, `add at least ${String(params.limit)} item(s)`);
    case 'oneOf':
      if (parent.title === 'Probe') return describeProbe(field, value, path);
      if (parent.title === 'SystemdSpec') return describeSystemdSpec(field, value, path);
      return at(`${field} must match exactly one of its allowed forms`, 'see schemas/process.schema.json for the allowed forms');
    case 'anyOf':
      if (parent.title === 'EnvValue') return at(`${field} must be a literal, {fromEnv: NAME} or {fromFile: path}`, envValueHint(value));
      if (parent.title === 'ProbePort') {
        return at(
          `${field} must be a port number or the name of a port in spec.ports, got ${show(value)}`,
          'use a number from 1 to 65535, or one of the names in spec.ports',
        );
      }
      return at(`${field} does not match any of its allowed forms`, 'see schemas/process.schema.json for the allowed forms');
    default:
      return at(`${field} ${error.message ?? 'is invalid'}`, 'see schemas/process.schema.json');
  }
}

const PROBE_KINDS = ['exec', 'http', 'tcp'];

function describeProbe(field: string, value: unknown, path: FieldPath): Described {
  const present = value !== null && typeof value === 'object' ? PROBE_KINDS.filter((kind) => kind in value) : [];
  const message =
    present.length === 0
      ? `${field} has no check: it needs exec, http or tcp`
      : `${field} has more than one check: ${present.slice(0, -1).join(', ')} and ${present[present.length - 1]}`;
  return { path, at: 'value', message, hint: 'a probe needs exactly one of exec, http, tcp' };
}

function describeSystemdSpec(field: string, value: unknown, path: FieldPath): Described {
  const both = value !== null && typeof value === 'object' && 'unit' in value && 'command' in value;
  return {
    path,
    at: 'value',
    message: both ? `${field} has both unit and command: it names an existing unit or describes one pm writes, not both` : `${field} has neither unit nor command`,
    hint: 'give unit: NAME.service to manage an existing unit, or command: [program, args...] to have pm write pm-<name>.service',
  };
}

function envValueHint(value: unknown): string {
  if (value === null) return "give it a value; write '' for an empty string";
  if (Array.isArray(value) || typeof value !== 'object') return 'write a string, number or boolean, {fromEnv: VAR} or {fromFile: path}';
  const keys = Object.keys(value);
  const record = value as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === 'fromEnv') {
    return typeof record.fromEnv === 'string' ? `fromEnv takes a variable name: ${ENV_NAME_RULE}` : 'fromEnv takes a variable name, as a string';
  }
  if (keys.length === 1 && keys[0] === 'fromFile') return 'fromFile takes a non-empty path, as a string';
  return 'use exactly one of fromEnv: VAR or fromFile: path, and nothing else';
}
