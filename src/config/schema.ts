// The config schema (schemas/config.schema.json) is the single source of every key, its type, its
// default, its PM_* variable (x-env), its flag (x-flag), whether it is a secret (x-secret) and
// whether it is a path (x-path). This file reads it once and compiles the ajv validator.
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import type { PmConfigFile } from './types.generated.js';

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

const SCHEMA_URL = new URL('../../schemas/config.schema.json', import.meta.url);
let schema: { properties: Record<string, PropertySchema> } | undefined;
let specs: KeySpec[] | undefined;
let validate: ValidateFunction<PmConfigFile> | undefined;

function readSchema(): NonNullable<typeof schema> {
  schema ??= JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as NonNullable<typeof schema>;
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

/** The ajv validator, compiled on first use; it fills in the schema defaults. */
export function configValidator(): ValidateFunction<PmConfigFile> {
  // Declaring the annotations keeps strict mode on for everything else (a typo in a keyword fails).
  validate ??= new Ajv({ allErrors: true, useDefaults: true, strict: true, keywords: ['x-env', 'x-flag', 'x-secret', 'x-path'] }).compile<PmConfigFile>(
    structuredClone(readSchema()),
  );
  return validate;
}
