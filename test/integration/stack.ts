// The stack most integration tests start from, one manifest file per process in manifests/:
//   job    one-shot, restartPolicy on-failure, appends a line to job-runs.txt each time it runs
//   api    HTTP server; readiness GET /ready; dependsOn job (completed)
//   worker idle; dependsOn api (ready) with restart: true
//   other  HTTP server on its own port with its own readiness probe; depends on nothing
import { readFile } from 'node:fs/promises';
import { httpReadiness, type ProcessSpec, type ProcessStatus, type Sandbox } from '../support/cli.js';

export interface Stack {
  apiPort: number;
  otherPort: number;
  /** One line per run of the job. */
  countFile: string;
}

export interface StackOptions {
  apiEnv?: Record<string, string>;
  otherLabels?: Record<string, string>;
  otherPeriodSeconds?: number;
}

export function stackSpecs(sandbox: Sandbox, stack: Stack, options: StackOptions = {}): Record<'job' | 'api' | 'worker' | 'other', ProcessSpec> {
  return {
    job: { name: 'job', program: 'job', env: { COUNT_FILE: stack.countFile }, restartPolicy: 'on-failure' },
    api: {
      name: 'api',
      program: 'http-server',
      env: { PORT: stack.apiPort, ...options.apiEnv },
      ports: [{ name: 'http', port: stack.apiPort }],
      dependsOn: [{ name: 'job', condition: 'completed' }],
      probes: httpReadiness('http'),
    },
    worker: {
      name: 'worker',
      program: 'idle',
      dependsOn: [{ name: 'api', condition: 'ready', restart: true }],
      stop: { gracePeriodSeconds: 1 },
    },
    other: {
      name: 'other',
      program: 'http-server',
      env: { PORT: stack.otherPort },
      labels: options.otherLabels ?? { team: 'a' },
      ports: [{ name: 'http', port: stack.otherPort }],
      probes: { readiness: { http: { port: 'http', path: '/ready' }, periodSeconds: options.otherPeriodSeconds ?? 0.2 } },
    },
  };
}

/** Writes the four manifests; returns the stack's ports and files. */
export async function writeStack(sandbox: Sandbox, options: StackOptions = {}, existing?: Stack): Promise<Stack> {
  const stack = existing ?? { apiPort: await sandbox.freePort(), otherPort: await sandbox.freePort(), countFile: sandbox.path('job-runs.txt') };
  const specs = stackSpecs(sandbox, stack, options);
  for (const spec of Object.values(specs)) await sandbox.write(`manifests/${spec.name}.yaml`, sandbox.manifest(spec));
  return stack;
}

/** How many times the job has run. */
export async function jobRuns(stack: Stack): Promise<number> {
  const text = await readFile(stack.countFile, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line.trim() !== '').length;
}

export function byName(statuses: readonly ProcessStatus[]): Map<string, ProcessStatus> {
  return new Map(statuses.map((s) => [s.name, s]));
}

/** name → PID (null when not running), for comparing before and after. */
export function pids(statuses: readonly ProcessStatus[]): Record<string, number | null> {
  return Object.fromEntries(statuses.map((s) => [s.name, s.pid]));
}

/** `pm apply` output names this process on a line of the plan with this action. */
export function planLine(stdout: string, action: string, name: string): string | undefined {
  return stdout.split('\n').find((line) => new RegExp(`^\\s+[+~-] ${action}\\s+${name}\\s`).test(line));
}
