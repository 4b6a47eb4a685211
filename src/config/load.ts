// Builds the effective daemon config from four layers, lowest first: schema defaults < config file
// < PM_* environment variables < flags. All or nothing: loadConfig returns a complete, validated
// config, or throws a ConfigError listing every problem (so a refused reload changes nothing).
import { homedir, hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ErrorObject } from 'ajv';
import { ConfigError, type ConfigIssue } from './errors.js';
import { parseConfigFile, readConfigText } from './file.js';
import { configKeys, configValidator, type ConfigKey, type KeySpec } from './schema.js';
import type { PmConfigFile } from './types.generated.js';

/** The effective config: the file's shape with every default filled in, stateDir and hostName included. */
export type PmConfig = PmConfigFile & { stateDir: string; hostName: string };

export type ConfigSourceKind = 'default' | 'file' | 'env' | 'flag';

export interface ConfigSource {
  source: ConfigSourceKind;
  /** `/etc/pm/config.yaml:3` for a file, `PM_PARALLEL` for env, `--parallel` for a flag, how a default was found (or `not set`). */
  detail: string;
}

export interface LoadConfigOptions {
  /** `--config PATH`: must exist. Without it: $PM_CONFIG (must exist), else the default path (may be missing). */
  file?: string;
  env: NodeJS.ProcessEnv;
  /** Parsed flags keyed by name without `--` (as node:util parseArgs gives them); unknown names are ignored. */
  flags: Record<string, string | boolean | string[] | undefined>;
  cwd: string;
}

export interface LoadedConfig {
  config: PmConfig;
  sources: Record<ConfigKey, ConfigSource>;
  /** The config file read, if any. */
  file: string | undefined;
}

interface LayerValue {
  value: unknown;
  source: ConfigSource;
  /** How an issue about this value names its origin. */
  where: string;
  /** Relative paths from this layer resolve against this directory. */
  base: string;
}

/** $XDG_CONFIG_HOME/pm/config.yaml, else ~/.config/pm/config.yaml. */
export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME ? resolve(env.XDG_CONFIG_HOME) : join(env.HOME ?? homedir(), '.config');
  return join(base, 'pm', 'config.yaml');
}

/** stateDir's computed default, and how it was found. */
function defaultStateDir(env: NodeJS.ProcessEnv): { value: string; detail: string } {
  if (env.XDG_STATE_HOME) return { value: join(resolve(env.XDG_STATE_HOME), 'pm'), detail: '$XDG_STATE_HOME/pm' };
  return { value: join(env.HOME ?? homedir(), '.local', 'state', 'pm'), detail: '~/.local/state/pm' };
}

/** A string from the environment or a flag, turned into the key's type; an error message if it cannot be. */
export function coerce(spec: KeySpec, text: string): { value: unknown } | { error: string } {
  if (spec.type === 'integer') {
    return /^[+-]?\d+$/.test(text.trim()) ? { value: Number(text) } : { error: `"${text}" is not a whole number` };
  }
  if (spec.type === 'number') {
    const n = Number(text);
    return text.trim() !== '' && Number.isFinite(n) ? { value: n } : { error: `"${text}" is not a number` };
  }
  if (spec.enum && !spec.enum.includes(text)) return { error: `"${text}" is not one of ${spec.enum.join(', ')}` };
  return { value: text };
}

function describeAjvError(error: ErrorObject, spec: KeySpec | undefined, value: unknown): string {
  const key = spec?.key ?? error.instancePath;
  const shown = spec?.secret ? '' : ` (got ${JSON.stringify(value)})`;
  if (error.keyword === 'enum') return `${key} must be one of ${(error.params as { allowedValues: string[] }).allowedValues.join(', ')}${shown}`;
  if (error.keyword === 'pattern' && key === 'listen') return `${key} must be host:port, e.g. 127.0.0.1:7070 or [::1]:7070${shown}`;
  return `${key} ${error.message ?? 'is invalid'}${shown}`;
}

export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const { env, flags, cwd } = options;
  const specs = configKeys();
  const issues: ConfigIssue[] = [];
  const chosen = new Map<ConfigKey, LayerValue>();

  // Layer 1: the file.
  const explicit = options.file ?? (env.PM_CONFIG ? env.PM_CONFIG : undefined);
  const path = resolve(cwd, explicit ?? defaultConfigPath(env));
  const text = await readConfigText(path);
  if (text === undefined && explicit !== undefined) {
    const via = options.file !== undefined ? '--config' : 'PM_CONFIG';
    throw new ConfigError([{ where: `${via} ${explicit}`, message: `config file ${path} does not exist` }], `check the path given by ${via}`);
  }
  if (text !== undefined) {
    const parsed = parseConfigFile(path, text, specs);
    issues.push(...parsed.issues);
    for (const [key, v] of Object.entries(parsed.values) as [ConfigKey, NonNullable<(typeof parsed.values)[ConfigKey]>][]) {
      chosen.set(key, { value: v.value, source: { source: 'file', detail: `${path}:${v.line}` }, where: `file ${path}:${v.line}:${v.col}`, base: dirname(path) });
    }
  }

  // Layers 2 and 3: environment, then flags. Both give strings, coerced by the schema's type.
  for (const spec of specs) {
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      const coerced = coerce(spec, fromEnv);
      if ('error' in coerced) issues.push({ where: `env ${spec.env}`, message: `${spec.key}: ${spec.secret ? 'invalid value' : coerced.error}` });
      else chosen.set(spec.key, { value: coerced.value, source: { source: 'env', detail: spec.env }, where: `env ${spec.env}`, base: cwd });
    }
    const fromFlag = spec.flag === undefined ? undefined : flags[spec.flag];
    if (fromFlag !== undefined) {
      const where = `flag --${spec.flag}`;
      const coerced = typeof fromFlag === 'string' ? coerce(spec, fromFlag) : { error: 'needs a value' };
      if ('error' in coerced) issues.push({ where, message: `${spec.key}: ${coerced.error}` });
      else chosen.set(spec.key, { value: coerced.value, source: { source: 'flag', detail: `--${spec.flag}` }, where, base: cwd });
    }
  }

  // Merge and validate; ajv fills in the schema defaults.
  const merged: Record<string, unknown> = {};
  for (const [key, v] of chosen) merged[key] = v.value;
  const validate = configValidator();
  if (!validate(merged)) {
    for (const error of validate.errors ?? []) {
      const key = error.instancePath.split('/')[1] as ConfigKey | undefined;
      const spec = specs.find((s) => s.key === key);
      const layer = key === undefined ? undefined : chosen.get(key);
      issues.push({ where: layer?.where ?? 'config', message: describeAjvError(error, spec, layer?.value) });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const sources = {} as Record<ConfigKey, ConfigSource>;
  const stateDirDefault = defaultStateDir(env);
  for (const spec of specs) {
    const layer = chosen.get(spec.key);
    if (layer) {
      if (spec.path && typeof merged[spec.key] === 'string') merged[spec.key] = resolve(layer.base, merged[spec.key] as string);
      sources[spec.key] = layer.source;
    } else if (spec.key === 'stateDir') {
      merged.stateDir = stateDirDefault.value;
      sources.stateDir = { source: 'default', detail: stateDirDefault.detail };
    } else if (spec.key === 'hostName') {
      merged.hostName = hostname();
      sources.hostName = { source: 'default', detail: 'the machine\'s host name' };
    } else {
      sources[spec.key] = { source: 'default', detail: spec.default === undefined ? 'not set' : 'schema' };
    }
  }
  return { config: merged as unknown as PmConfig, sources, file: text === undefined ? undefined : path };
}
