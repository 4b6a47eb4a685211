// The daemon config: schema-driven keys, layered loading, reload, and `pm config show` formatting.
export { ConfigError, type ConfigIssue } from './errors.js';
export { loadEnvFile } from './env-file.js';
export { coerce, defaultConfigPath, loadConfig, type ConfigSource, type ConfigSourceKind, type LoadConfigOptions, type LoadedConfig, type PmConfig } from './load.js';
export { reloadConfig, type ReloadResult } from './reload.js';
export { configKeys, type ConfigKey, type KeySpec } from './schema.js';
export { MASK, configRows, describeSource, formatConfig, type ConfigRow } from './show.js';
