// Stateless probe runners (kubelet prober style): run one probe once and report the outcome.
// Thresholds and scheduling live in worker.ts.
import type { Port, Probe } from '../manifest/types.js';
import { runExecProbe } from './exec.js';
import { runHttpProbe } from './http.js';
import { waitForNotification } from './notify.js';
import { resolvePort } from './port.js';
import type { ProbeResult } from './result.js';
import { runTcpProbe } from './tcp.js';

export type { ProbeResult } from './result.js';

/** A container's HEALTHCHECK status, as its engine reports it. */
export type HealthStatus = 'starting' | 'healthy' | 'unhealthy' | 'none';

/**
 * What pm runs as a probe: one of the manifest's, or the image's HEALTHCHECK read from the engine
 * (spec.docker.useHealthcheck), with the same timing fields so the worker and its thresholds serve both.
 */
export type RunnableProbe = Probe | (Omit<Probe, 'exec' | 'http' | 'tcp' | 'notify'> & { healthcheck: true });

export interface ProbeContext {
  /** The process's declared ports, for probes that name one. */
  ports: readonly Port[];
  /** Working directory and environment for exec probes (those of the probed process). */
  cwd?: string;
  env?: Record<string, string>;
  /** The process's user and group: exec probes run as them (pm's own when absent). */
  uid?: number;
  gid?: number;
  signal?: AbortSignal;
  /** The instance's HEALTHCHECK status, for a healthcheck probe. */
  health?: () => Promise<HealthStatus>;
  /** Runs an exec probe's command inside the instance (a container) instead of on the host; its exit code. */
  execIn?: (command: readonly string[], timeoutMs: number, signal?: AbortSignal) => Promise<number>;
  /** What the instance wrote to its notification descriptor (a notify probe), by path. */
  readyFile?: string;
}

/** Runs the probe once. Never rejects: every failure, timeout and abort is a result with ok: false. */
export async function runProbe(probe: RunnableProbe, context: ProbeContext): Promise<ProbeResult> {
  if ('healthcheck' in probe) return runHealthcheckProbe(context);
  const { timeoutSeconds } = probe;
  if (probe.exec && context.execIn) return runExecInProbe(probe.exec.command, timeoutSeconds, context.execIn, context.signal);
  if (probe.exec) {
    const { cwd, env, uid, gid } = context;
    return runExecProbe({ command: probe.exec.command, cwd, env, uid, gid }, timeoutSeconds, context.signal);
  }
  if (probe.http) {
    const resolved = resolvePort(probe.http.port, context.ports);
    if ('error' in resolved) return { ok: false, message: resolved.error, durationMs: 0 };
    const { scheme, host, path, headers } = probe.http;
    return runHttpProbe({ scheme, host, port: resolved.port, path, headers }, timeoutSeconds, context.signal);
  }
  if (probe.notify) {
    // A tick waits out its period for the line, so the notification is taken the moment it is written.
    if (context.readyFile === undefined) return { ok: false, message: 'no notification file for this run (a notify probe needs a process pm started)', durationMs: 0 };
    return waitForNotification(context.readyFile, probe.notify.fd, probe.periodSeconds * 1000, context.signal);
  }
  if (probe.tcp) {
    const resolved = resolvePort(probe.tcp.port, context.ports);
    if ('error' in resolved) return { ok: false, message: resolved.error, durationMs: 0 };
    return runTcpProbe({ host: probe.tcp.host, port: resolved.port }, timeoutSeconds, context.signal);
  }
  return { ok: false, message: 'probe has none of exec, http, tcp, notify', durationMs: 0 };
}

async function runHealthcheckProbe(context: ProbeContext): Promise<ProbeResult> {
  const began = Date.now();
  if (!context.health) return { ok: false, message: 'no HEALTHCHECK status to read (not a container)', durationMs: 0 };
  try {
    const status = await context.health();
    const durationMs = Date.now() - began;
    if (status === 'none') return { ok: false, message: 'the image has no HEALTHCHECK (useHealthcheck needs one)', durationMs };
    return { ok: status === 'healthy', message: `HEALTHCHECK ${status}`, durationMs };
  } catch (error) {
    return { ok: false, message: `HEALTHCHECK status not read: ${(error as Error).message}`, durationMs: Date.now() - began };
  }
}

async function runExecInProbe(command: readonly string[], timeoutSeconds: number, execIn: NonNullable<ProbeContext['execIn']>, signal: AbortSignal | undefined): Promise<ProbeResult> {
  const began = Date.now();
  try {
    const code = await execIn(command, timeoutSeconds * 1000, signal);
    return { ok: code === 0, message: `exit ${code}`, durationMs: Date.now() - began };
  } catch (error) {
    return { ok: false, message: (error as Error).message, durationMs: Date.now() - began };
  }
}
