// TCP probe: succeeds when a connection opens; the socket is closed at once.
import { connect } from 'node:net';
import { attempt, errorMessage, type ProbeResult } from './result.js';

export function runTcpProbe(target: { host: string; port: number }, timeoutSeconds: number, signal?: AbortSignal): Promise<ProbeResult> {
  return attempt(timeoutSeconds, signal, (settle) => {
    const socket = connect({ host: target.host, port: target.port });
    socket.once('connect', () => settle(true, `connected to ${formatHostPort(target.host, target.port)}`));
    socket.on('error', (err) => settle(false, errorMessage(err)));
    return () => {
      socket.destroy();
    };
  });
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
