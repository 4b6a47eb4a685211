// What `pm config show` prints: each key, its effective value (secrets masked) and where it came from.
import { yaml } from '../util/lazy-yaml.js';
import { formatTable } from '../cli/output/table.js';
import type { ConfigSource, LoadedConfig } from './load.js';
import { configKeys } from './schema.js';

export const MASK = '****';

export interface ConfigRow {
  key: string;
  /** The effective value, `****` for a secret that is set; undefined when unset. */
  value: unknown;
  source: ConfigSource['source'];
  detail: string;
}

export function configRows(loaded: LoadedConfig): ConfigRow[] {
  return configKeys().map((spec) => {
    const raw: unknown = loaded.config[spec.key];
    const value = spec.secret && raw !== undefined ? maskSecret(raw) : raw;
    return { key: spec.key, value, ...loaded.sources[spec.key] };
  });
}

/**
 * A secret that is a URL (databaseUrl) keeps what locates the server, so an operator can check it;
 * its password, and any other secret, is masked whole.
 */
function maskSecret(value: unknown): string {
  if (typeof value === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    try {
      const url = new URL(value);
      if (url.password) url.password = MASK;
      // libpq also takes ?password=.
      if (url.searchParams.has('password')) url.searchParams.set('password', MASK);
      return url.toString();
    } catch {
      return MASK;
    }
  }
  return MASK;
}

/** `default`, `file /etc/pm/config.yaml:3`, `env PM_PARALLEL`, `flag --parallel`. */
export function describeSource(row: Pick<ConfigRow, 'source' | 'detail'>): string {
  return row.source === 'default' ? 'default' : `${row.source} ${row.detail}`;
}

export function formatConfig(loaded: LoadedConfig, format: 'table' | 'json' | 'yaml'): string {
  const rows = configRows(loaded);
  if (format === 'table') {
    const cells = rows.map((r) => [r.key, r.value === undefined ? '-' : String(r.value), describeSource(r)]);
    const header = loaded.file ? `# config file: ${loaded.file}\n` : '# config file: none\n';
    return header + formatTable(['KEY', 'VALUE', 'SOURCE'], cells);
  }
  const doc = Object.fromEntries(rows.map((r) => [r.key, { value: r.value ?? null, source: r.source, detail: r.detail }]));
  return format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : yaml().stringify(doc);
}
