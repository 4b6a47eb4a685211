// The probes pm runs for a process: the manifest's, except that a container with
// spec.docker.useHealthcheck takes its readiness from the image's HEALTHCHECK, read from the engine
// every second (the engine runs the check itself, at the image's interval).
import type { ProcessManifest } from '../manifest/types.js';
import type { RunnableProbe } from './runners.js';

export interface EffectiveProbes {
  startup?: RunnableProbe;
  readiness?: RunnableProbe;
  liveness?: RunnableProbe;
}

const HEALTHCHECK_READINESS: RunnableProbe = { healthcheck: true, initialDelaySeconds: 0, periodSeconds: 1, timeoutSeconds: 5, successThreshold: 1, failureThreshold: 1 };

export function probesOf(manifest: ProcessManifest): EffectiveProbes {
  const { probes, docker } = manifest.spec;
  if (manifest.spec.driver === 'docker' && docker?.useHealthcheck) return { ...probes, readiness: HEALTHCHECK_READINESS };
  return probes;
}
