// Follows a started process through its startup and readiness probes until it is ready, in the
// Kubernetes order: readiness is not probed until the startup probe has passed.
import type { DesiredProcess, Probe } from '../manifest/types.js';
import { ProbeWorker, runProbeLoop, type ProbeKind } from '../probes/worker.js';
import { runProbe, type ProbeContext } from '../probes/runners.js';
import type { ProcessTracker } from './tracker.js';

/**
 * Resolves once the tracker is ready, or failed (a startup probe that reached its failure
 * threshold), or `signal` aborted. `env` is the process's own environment, for exec probes.
 */
export async function followProbes(proc: DesiredProcess, pid: number, tracker: ProcessTracker, signal: AbortSignal, env: Record<string, string>): Promise<void> {
  const { probes, ports, exec } = proc.manifest.spec;
  const context: ProbeContext = { ports, cwd: exec.cwd, env, signal };
  if (probes.startup && !(await probeUntilDecided('startup', probes.startup, tracker, context, signal))) return;
  if (probes.readiness && !(await probeUntilDecided('readiness', probes.readiness, tracker, context, signal))) return;
  if (tracker.state === 'running') tracker.set('ready', `pid ${pid}`);
}

/**
 * Runs the probe on its schedule until it succeeds (true), or a startup probe fails, the process
 * ends, or the apply stops waiting (false). Readiness failures are not final: the process may still
 * get ready before the timeout, and the last result is shown meanwhile.
 */
async function probeUntilDecided(kind: ProbeKind, probe: Probe, tracker: ProcessTracker, context: ProbeContext, signal: AbortSignal): Promise<boolean> {
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
