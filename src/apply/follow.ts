// Follows a started service through its startup and readiness probes until it is ready, in the
// Kubernetes order (readiness is not probed until the startup probe has passed), and then until it
// has stayed up minReadySeconds, so a process that crashes at once is not reported as started.
import { probesOf } from '../probes/effective.js';
import { setTimeout as delay } from 'node:timers/promises';
import { runtimeOf } from '../manifest/runtime.js';
import type { DesiredProcess } from '../manifest/types.js';
import { ProbeWorker, runProbeLoop, type ProbeKind } from '../probes/worker.js';
import { runProbe, type ProbeContext, type RunnableProbe } from '../probes/runners.js';
import type { ProcessTracker } from './tracker.js';

export interface Instance {
  /** How progress names the run: `pid 123`, or a unit. */
  label: string;
  /** Epoch ms the instance started. */
  startedAt: number;
  /** The process's own environment and user, for exec probes. */
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** What probes may ask the instance's driver (a container's HEALTHCHECK, exec probes inside it). */
  probeHooks?: Pick<ProbeContext, 'health' | 'execIn'>;
  /** Where a notify startup probe finds what the run wrote to its descriptor. */
  readyFile?: string;
}

/** Resolves once the tracker is ready or final, or `signal` aborted. */
export async function followProbes(proc: DesiredProcess, tracker: ProcessTracker, signal: AbortSignal, instance: Instance): Promise<void> {
  const { ports, minReadySeconds } = proc.manifest.spec;
  const probes = probesOf(proc.manifest);
  const { cwd } = runtimeOf(proc.manifest);
  const context: ProbeContext = { ports, ...(cwd !== undefined && { cwd }), env: instance.env, signal, ...(instance.uid !== undefined && { uid: instance.uid }), ...(instance.gid !== undefined && { gid: instance.gid }), ...instance.probeHooks, ...(instance.readyFile !== undefined && { readyFile: instance.readyFile }) };
  if (probes.startup && !(await probeUntilDecided('startup', probes.startup, tracker, context, signal))) return;
  if (probes.readiness && !(await probeUntilDecided('readiness', probes.readiness, tracker, context, signal))) return;
  const settle = instance.startedAt + minReadySeconds * 1000 - Date.now();
  if (settle > 0 && tracker.state === 'running') {
    tracker.note(`${instance.label}; up for less than minReadySeconds (${minReadySeconds}s)`);
    await delay(settle, undefined, { signal });
  }
  if (tracker.state === 'running') tracker.set('ready', instance.label);
}

/**
 * Runs the probe on its schedule until it succeeds (true), or a startup probe fails, the process
 * ends, or the apply stops waiting (false). Readiness failures are not final: the process may still
 * get ready before the timeout, and the last result is shown meanwhile.
 */
async function probeUntilDecided(kind: ProbeKind, probe: RunnableProbe, tracker: ProcessTracker, context: ProbeContext, signal: AbortSignal): Promise<boolean> {
  const done = new AbortController();
  const stop = (): void => done.abort();
  signal.addEventListener('abort', stop, { once: true });
  let passed = false;
  const worker = new ProbeWorker(kind, probe, () => runProbe(probe, { ...context, signal: done.signal }));
  try {
    await runProbeLoop(worker, probe, {
      signal: done.signal,
      onResult: (update) => {
        if (tracker.final || tracker.state !== 'running') return stop();
        if (update.status === 'success') {
          passed = true;
          return stop();
        }
        if (kind === 'startup' && update.status === 'failure') {
          tracker.set('failed', `startup probe failed ${update.consecutiveFailures} times: ${update.result.message}`);
          return stop();
        }
        if (!update.result.ok) tracker.note(`${kind}: ${update.result.message} (${update.consecutiveFailures} failed)`);
      },
    });
  } finally {
    signal.removeEventListener('abort', stop);
  }
  return passed;
}
