import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `500ms`, `30s`, `5m`, `1h`, `1m30s`; a bare number means seconds (like kubectl --timeout). */
export function parseDuration(text: string, flag: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
    throw new UsageError(`${flag}: "${text}" is not a duration`, `write it like 500ms, 30s, 5m or 1h`);
  }
  return parts.reduce((total, p) => total + Number(p[1]) * (UNITS[p[2] as string] ?? 0), 0);
}

/** 42s, 3m12s, 5h, 2d: the age format of kubectl get. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 && h < 8 ? `${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d`;
}
