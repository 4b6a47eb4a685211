// Probes may name a port declared in spec.ports instead of giving its number.
import type { Port, ProbePort } from '../manifest/types.js';

/** The port number, or an error message when the name is not declared or the number is invalid. */
export function resolvePort(port: ProbePort, ports: readonly Port[]): { port: number } | { error: string } {
  if (typeof port === 'number') {
    return Number.isInteger(port) && port > 0 && port < 65536 ? { port } : { error: `port ${port} is not a valid TCP port` };
  }
  const declared = ports.find((p) => p.name === port);
  if (declared === undefined) {
    const names = ports.flatMap((p) => (p.name === undefined ? [] : [p.name]));
    return { error: `port "${port}" is not declared in spec.ports${names.length > 0 ? ` (declared: ${names.join(', ')})` : ''}` };
  }
  return { port: declared.port };
}
