// Unit names as systemd.unit(5) (and systemd's unit-name.c) allow them, checked before any
// systemctl call: systemctl would escape a bad name, take a number for a job id, expand a glob, or
// read a leading '-' as an option. pm refuses instead, naming the rule broken.
import { SystemdError, SystemdErrorCode } from './errors.js';

/** The unit types systemd knows, i.e. the suffixes a unit name may end with. */
export const UNIT_TYPES = ['service', 'socket', 'device', 'mount', 'automount', 'swap', 'target', 'path', 'timer', 'slice', 'scope'] as const;
export type UnitType = (typeof UNIT_TYPES)[number];

/** UNIT_NAME_MAX in systemd is 256 including the terminating NUL. */
export const UNIT_NAME_MAX = 255;
/** The prefix of every unit pm owns. */
export const OWNED_PREFIX = 'pm-';

const PREFIX_CHARS = /^[A-Za-z0-9:_.\\-]+$/;
/** systemd allows further '@' in the instance part, not in the prefix. */
const INSTANCE_CHARS = /^[A-Za-z0-9:_.\\@-]+$/;

/** Throws E_SYSTEMD_UNIT_NAME unless `name` is a unit name systemd accepts and pm can pass safely; returns it. */
export function validateUnitName(name: unknown): string {
  const broken = unitNameProblem(name);
  if (broken !== undefined) {
    throw new SystemdError(SystemdErrorCode.unitName, `invalid unit name ${JSON.stringify(name)}: ${broken}`, {
      hint: 'a unit name is PREFIX[@INSTANCE].TYPE, e.g. pm-api.service, using only letters, digits and : _ . \\ - (see systemd.unit(5))',
    });
  }
  return name as string;
}

/** Which rule `name` breaks, or undefined when it is valid. */
export function unitNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `a unit name is a string, not ${name === null ? 'null' : typeof name}`;
  if (name.length === 0) return 'it is empty';
  if (name.length > UNIT_NAME_MAX) return `it is ${name.length} characters long; at most ${UNIT_NAME_MAX} are allowed`;
  if (name.startsWith('-')) return "it begins with '-', which systemctl would read as an option";
  const dot = name.lastIndexOf('.');
  if (dot < 0) return `it has no type suffix (one of .${UNIT_TYPES.join(', .')})`;
  const type = name.slice(dot + 1);
  if (!(UNIT_TYPES as readonly string[]).includes(type)) return `".${type}" is not a unit type (one of .${UNIT_TYPES.join(', .')})`;
  const stem = name.slice(0, dot);
  if (stem.length === 0) return 'the part before the type suffix is empty';
  const at = stem.indexOf('@');
  const prefix = at < 0 ? stem : stem.slice(0, at);
  if (prefix.length === 0) return "the part before '@' is empty";
  const badPrefix = firstBadChar(prefix, PREFIX_CHARS);
  if (badPrefix !== undefined) return `${describeChar(badPrefix)} is not allowed (only letters, digits and : _ . \\ -${at < 0 ? ', and one @ for a template instance' : ''})`;
  if (at >= 0) {
    const instance = stem.slice(at + 1);
    if (instance.length === 0) return `it is a template (${name}) with no instance: only an instance such as ${prefix}@x.${type} can be started`;
    const badInstance = firstBadChar(instance, INSTANCE_CHARS);
    if (badInstance !== undefined) return `${describeChar(badInstance)} is not allowed in the instance (only letters, digits and : _ . \\ - @)`;
  }
  return undefined;
}

/** The unit pm owns for a process: pm-<name>.service, validated. */
export function ownedUnitName(processName: string): string {
  return validateUnitName(`${OWNED_PREFIX}${processName}.service`);
}

/** Throws E_SYSTEMD_UNIT_NAME for the first invalid name; returns the list without duplicates, in order. */
export function validateUnitNames(names: readonly unknown[]): string[] {
  return [...new Set(names.map((name) => validateUnitName(name)))];
}

function firstBadChar(text: string, allowed: RegExp): string | undefined {
  if (allowed.test(text)) return undefined;
  for (const char of text) if (!allowed.test(char)) return char;
  return undefined;
}

function describeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `the control character U+${code.toString(16).padStart(4, '0').toUpperCase()}`;
  if (char === ' ') return 'a space';
  return `${JSON.stringify(char)}`;
}
