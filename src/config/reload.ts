// A reload replaces the config only when the new one is valid: a refused config is logged and the
// old one stays in force (loadConfig is all or nothing, so nothing is half-applied).
import { ConfigError } from './errors.js';
import { loadConfig, type LoadConfigOptions, type LoadedConfig } from './load.js';

export type ReloadResult = { applied: true; loaded: LoadedConfig } | { applied: false; loaded: LoadedConfig; error: ConfigError };

export async function reloadConfig(
  current: LoadedConfig,
  options: LoadConfigOptions,
  log: (message: string, error: ConfigError) => void,
  load: (options: LoadConfigOptions) => Promise<LoadedConfig> = loadConfig,
): Promise<ReloadResult> {
  try {
    return { applied: true, loaded: await load(options) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log('new configuration refused; the previous one stays in force', error);
    return { applied: false, loaded: current, error };
  }
}
