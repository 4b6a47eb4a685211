import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest a Node timer can wait (about 24.8 days); longer values would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Parses `500ms`, `30s`, `5m`, `1h`, `1m30s`; a bare number means seconds (like kubectl --timeout). */
export function parseDuration(text: string, flag: string): number {
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
      throw new UsageError(`${flag}: "${text}" is not a duration`, `write it like 500ms, 30s, 5m or 1h`);
    }
    ms = parts.reduce((total, p) => total + Number(p[1]) * (UNITS[p[2] as string] ?? 0), 0);
  }
  if (ms > MAX_TIMER_MS) throw new UsageError(`${flag}: "${text}" is longer than pm can wait (24 days)`, 'use a shorter duration');
  return ms;
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
