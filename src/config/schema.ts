// The config schema (schemas/config.schema.json) is the single source of every key, its type, its
// default, its PM_* variable (x-env), its flag (x-flag), whether it is a secret (x-secret) and
// whether it is a path (x-path). This file reads it once; its validator is compiled from it at
// development time (validate.generated.ts, scripts/gen-validator.ts), so loading a config never
// loads ajv.
import { readFileSync } from 'node:fs';
import type { ValidateFunction } from 'ajv';
import type { PmConfigFile } from './types.generated.js';
import { validate as generatedValidate } from './validate.generated.js';
import { packagePath } from '../util/package-root.js';

export type ConfigKey = keyof PmConfigFile;

/** What the schema says about one key, in the form the loader needs. */
export interface KeySpec {
  key: ConfigKey;
  type: 'string' | 'integer' | 'number';
  enum: readonly string[] | undefined;
  default: unknown;
  env: string;
  /** Without the leading `--`; undefined when the key has no flag (a secret). */
  flag: string | undefined;
  secret: boolean;
  path: boolean;
}

interface PropertySchema {
  type: KeySpec['type'];
  enum?: string[];
  default?: unknown;
  'x-env': string;
  'x-flag'?: string;
  'x-secret'?: boolean;
  'x-path'?: boolean;
}

const SCHEMA_PATH = packagePath('schemas/config.schema.json');
let schema: { properties: Record<string, PropertySchema> } | undefined;
let specs: KeySpec[] | undefined;

function readSchema(): NonNullable<typeof schema> {
  schema ??= JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as NonNullable<typeof schema>;
  return schema;
}

/** Every config key, in schema order. Cheap: reads the schema without compiling it (for --help). */
export function configKeys(): readonly KeySpec[] {
  specs ??= Object.entries(readSchema().properties).map(([key, p]): KeySpec => ({
    key: key as ConfigKey,
    type: p.type,
    enum: p.enum,
    default: p.default,
    env: p['x-env'],
    flag: p['x-flag']?.replace(/^--/, ''),
    secret: p['x-secret'] === true,
    path: p['x-path'] === true,
  }));
  return specs;
}

/** The validator compiled from the schema; it fills in the schema defaults and reports every error. */
export function configValidator(): ValidateFunction<PmConfigFile> {
  return generatedValidate as ValidateFunction<PmConfigFile>;
}
