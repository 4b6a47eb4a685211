// Checks that need the whole set: unique names, dependencies that exist and form no cycle,
// conditions a dependency can reach, probe ports that exist, ports not claimed twice.
// Everything is linear in the size of the set: processes are numbered and the dependency graph is
// kept in flat arrays, so 10,000 processes are checked in milliseconds.
// No check may read a field normalizeManifest rewrites (paths, cwd): the daemon's cache hands some
// documents over already normalized, beside others fresh from the parse (src/manifest/cache.ts).
import type { ManifestIssue } from '../errors.js';
import { closest } from './hints.js';
import { issueAt, where } from './issues.js';
import type { ParsedDocument } from './parse.js';
import { OWNED_PREFIX, unitNameProblem } from '../drivers/systemd/unit-name.js';
import { ENFORCED, parseBytes } from './resources.js';
import type { ProcessManifest, Resources } from './types.js';

export interface ValidDocument {
  doc: ParsedDocument;
  manifest: ProcessManifest;
}

export interface SetCheckInput {
  /** Documents that passed the schema, in load order. */
  valid: readonly ValidDocument[];
  /** Every document with a string metadata.name, valid or not, in load order. */
  named: readonly { doc: ParsedDocument; name: string }[];
  /** False when a document could not be read: a dependency may be declared there, so none is reported missing. */
  namesComplete: boolean;
}

const NAME_PATH = ['metadata', 'name'] as const;

/** Runs every set-wide check; returns the issues, each located at the offending node. */
export function checkSet(input: SetCheckInput): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  const firstByName = new Map<string, ParsedDocument>();
  for (const { doc, name } of input.named) {
    const first = firstByName.get(name);
    if (!first) {
      firstByName.set(name, doc);
      continue;
    }
    issues.push(
      issueAt(
        doc,
        NAME_PATH,
        'name.duplicate',
        `duplicate process name "${name}": also declared at ${where(first, NAME_PATH)}`,
        'process names must be unique across the set: rename or remove one of them',
      ),
    );
  }
  // Only the first document of a name takes part in the remaining checks.
  const processes = input.valid.filter((p) => firstByName.get(p.manifest.metadata.name) === p.doc);
  const graph = checkDependencies(processes, input.namesComplete ? firstByName : undefined, issues);
  for (const cycle of findCycles(graph)) {
    issues.push(
      issueAt(
        (processes[cycle.process] as ValidDocument).doc,
        ['spec', 'dependsOn', cycle.entry, 'name'],
        'dependency.cycle',
        `dependency cycle: ${cycle.path}`,
        'processes cannot wait for each other in a circle: remove or change one dependsOn entry of the cycle (this one closes it)',
      ),
    );
  }
  checkPorts(processes, issues);
  checkDrivers(processes, issues);
  checkPublishedPorts(processes, issues);
  checkPrograms(processes, issues);
  checkOneshots(processes, issues);
  checkNotifyProbes(processes, issues);
  checkRestartScripts(processes, issues);
  return issues;
}

/** Docker refuses smaller memory limits ("Minimum memory limit allowed is 6MB"). */
const MIN_CONTAINER_MEMORY = 6 * 1024 * 1024;

const DRIVER_BLOCKS = ['exec', 'docker', 'systemd'] as const;
const BLOCK_FIX: Record<(typeof DRIVER_BLOCKS)[number], string> = {
  exec: 'add spec.exec.command: [program, args...]',
  docker: 'add spec.docker.image: the image to run (pm never pulls it: it must be on the engine)',
  systemd: 'add spec.systemd.unit (an existing unit pm manages) or spec.systemd.command (pm writes the unit)',
};

/** Each driver has its own spec block, and only that one: a block another driver would ignore is an error. */
function checkDrivers(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  const managedUnits = new Map<string, ValidDocument>();
  for (const p of processes) {
    const { doc, manifest } = p;
    const { spec } = manifest;
    const own = spec.driver;
    if (spec[own] === undefined) {
      issues.push(issueAt(doc, ['spec', 'driver'], 'driver.spec-missing', `driver ${spec.driver} needs spec.${own}`, BLOCK_FIX[own], 'key'));
    }
    for (const other of DRIVER_BLOCKS) {
      if (other === own || spec[other] === undefined) continue;
      issues.push(issueAt(doc, ['spec', other], 'driver.spec-unused', `spec.${other} is for driver ${other}, but this process has driver ${spec.driver}`, `remove spec.${other}, or set spec.driver: ${other}`, 'key'));
    }
    const unit = spec.driver === 'systemd' ? spec.systemd?.unit : undefined;
    if (unit !== undefined) checkManagedUnit(p, unit, managedUnits, issues);
    for (const key of Object.keys(spec.resources ?? {}) as (keyof Resources)[]) {
      if (unit !== undefined) {
        issues.push(issueAt(doc, ['spec', 'resources', key], 'resources.unsupported', `pm does not write ${unit}, so it cannot put resources.${key} in it`, `set the limit in the unit itself (systemctl edit ${unit}), or let pm write the unit (spec.systemd.command instead of unit)`, 'key'));
      } else if (!ENFORCED[spec.driver].includes(key)) {
        issues.push(
          issueAt(
            doc,
            ['spec', 'resources', key],
            'resources.unsupported',
            `driver ${spec.driver} cannot enforce resources.${key} (it enforces ${ENFORCED[spec.driver].join(', ')})`,
            'remove the limit, or run the process with a driver that enforces it',
            'key',
          ),
        );
      }
    }
    const memory = spec.resources?.memory;
    if (spec.driver === 'docker' && memory !== undefined && parseBytes(memory) < MIN_CONTAINER_MEMORY) {
      issues.push(issueAt(doc, ['spec', 'resources', 'memory'], 'resources.memory-too-small', `resources.memory ${memory} is below the engine's minimum for a container, 6Mi`, 'give it at least 6Mi'));
    }
    const docker = spec.docker;
    if (spec.driver !== 'docker' || !docker) continue;
    if (docker.useHealthcheck && spec.probes.readiness) {
      issues.push(issueAt(doc, ['spec', 'probes', 'readiness'], 'probe.readiness-twice', 'readiness comes from the image\'s HEALTHCHECK (spec.docker.useHealthcheck) and from a readiness probe', 'keep one: remove spec.probes.readiness, or set useHealthcheck: false', 'key'));
    }
    for (const key of Object.keys(docker.labels)) {
      if (key.startsWith('pm.')) issues.push(issueAt(doc, ['spec', 'docker', 'labels', key], 'docker.label-reserved', `label ${key}: keys starting with pm. are pm's own (ownership and drift)`, 'rename the label', 'key'));
    }
  }
}

/**
 * An existing unit pm manages: a valid name, not one of the units pm writes, managed by one process
 * only, and nothing pm would have to write into it.
 */
function checkManagedUnit({ doc, manifest }: ValidDocument, unit: string, seen: Map<string, ValidDocument>, issues: ManifestIssue[]): void {
  const at = ['spec', 'systemd', 'unit'];
  const problem = unitNameProblem(unit);
  if (problem !== undefined) {
    issues.push(issueAt(doc, at, 'systemd.unit-name', `invalid unit name ${JSON.stringify(unit)}: ${problem}`, 'a unit name is PREFIX[@INSTANCE].TYPE, e.g. nginx.service (see systemd.unit(5))'));
    return;
  }
  if (unit.startsWith(OWNED_PREFIX)) {
    issues.push(issueAt(doc, at, 'systemd.unit-reserved', `${unit}: units named ${OWNED_PREFIX}… are the ones pm writes for spec.systemd.command`, `to have pm write it, give spec.systemd.command; to manage an existing unit, it must not be named ${OWNED_PREFIX}…`));
  }
  const first = seen.get(unit);
  if (first) {
    issues.push(issueAt(doc, at, 'systemd.unit-twice', `${unit} is also managed by ${first.manifest.metadata.name} at ${where(first.doc, at)}`, 'one process per unit: remove one of them'));
  } else {
    seen.set(unit, { doc, manifest });
  }
  const systemd = manifest.spec.systemd;
  if (!systemd) return;
  const given = { cwd: systemd.cwd !== undefined, user: systemd.user !== undefined, group: systemd.group !== undefined, env: Object.keys(systemd.env).length > 0, envFiles: systemd.envFiles.length > 0 };
  for (const key of Object.keys(given).filter((k) => given[k as keyof typeof given])) {
    issues.push(issueAt(doc, ['spec', 'systemd', key], 'systemd.unit-not-owned', `spec.systemd.${key} would have to be written into ${unit}, which pm does not own`, `set it in the unit itself (systemctl edit ${unit}), or let pm write the unit (spec.systemd.command instead of unit)`, 'key'));
  }
}

/**
 * A container's published host port is taken on the host like a port an exec process listens on:
 * no other process may declare or publish it (a container may list its own in spec.ports, to name
 * it for probes). With network host, nothing is published: the container's ports are the host's.
 */
function checkPublishedPorts(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  const owners = new Map<string, [ValidDocument, readonly (string | number)[]]>();
  for (const p of processes) {
    p.manifest.spec.ports.forEach((port, i) => {
      const key = `${port.port}/${port.protocol}`;
      if (!owners.has(key)) owners.set(key, [p, ['spec', 'ports', i, 'port']]);
    });
  }
  for (const p of processes) {
    const docker = p.manifest.spec.driver === 'docker' ? p.manifest.spec.docker : undefined;
    if (!docker) continue;
    if (docker.network === 'host' && docker.publish.length > 0) {
      issues.push(issueAt(p.doc, ['spec', 'docker', 'publish'], 'docker.publish-host-network', 'with network: host a container shares the host\'s ports: publish does nothing', 'remove spec.docker.publish, or use another network', 'key'));
    }
    docker.publish.forEach((published, i) => {
      const key = `${published.hostPort}/${published.protocol}`;
      const at = ['spec', 'docker', 'publish', i, 'hostPort'];
      const owner = owners.get(key);
      if (!owner) {
        owners.set(key, [p, at]);
      } else if (owner[0] !== p) {
        issues.push(
          issueAt(p.doc, at, 'port.conflict', `host port ${key} is also declared by ${owner[0].manifest.metadata.name} at ${where(owner[0].doc, owner[1])}`, 'two processes cannot take the same host port: change one of them'),
        );
      }
    });
  }
}

/** strategy: script and the script itself come together, so neither is silently ignored. */
function checkRestartScripts(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  for (const { doc, manifest } of processes) {
    const policy = manifest.spec.restartPolicy;
    if (policy.strategy === 'script' && !policy.script) {
      issues.push(issueAt(doc, ['spec', 'restartPolicy', 'strategy'], 'restart.script-missing', 'strategy: script needs restartPolicy.script, the program to run', 'add restartPolicy.script.command: [program, args...], or set strategy: restart'));
    } else if (policy.strategy !== 'script' && policy.script) {
      issues.push(issueAt(doc, ['spec', 'restartPolicy', 'script'], 'restart.script-unused', 'restartPolicy.script is set but strategy is restart, so it would never run', 'set restartPolicy.strategy: script, or remove the script', 'key'));
    }
  }
}

/** A oneshot runs to completion: it is never "ready" while running, and `always` would loop it. */
function checkOneshots(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  for (const { doc, manifest } of processes) {
    const spec = manifest.spec;
    if (spec.type !== 'oneshot') continue;
    if (spec.restartPolicy.policy === 'always') {
      issues.push(
        issueAt(doc, ['spec', 'type'], 'type.oneshot-always', 'a oneshot process with restartPolicy always would run again every time it completes', 'set spec.restartPolicy.policy to on-failure (retry until it succeeds) or never'),
      );
    }
    for (const kind of ['readiness', 'liveness'] as const) {
      if (spec.probes[kind]) {
        issues.push(
          issueAt(doc, ['spec', 'probes', kind], 'probe.oneshot', `a oneshot process has no ${kind} to probe: it counts as done when it exits with code 0`, `remove spec.probes.${kind}, or make it a service (spec.type: service)`, 'key'),
        );
      }
    }
  }
}

/**
 * A readiness notification arrives once, from a process pm spawned itself: it is a startup signal
 * (readiness and liveness must be checked again and again), and only the exec driver hands the
 * process a descriptor of pm's.
 */
function checkNotifyProbes(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  for (const { doc, manifest } of processes) {
    const { probes, driver } = manifest.spec;
    for (const kind of ['readiness', 'liveness'] as const) {
      if (!probes[kind]?.notify) continue;
      issues.push(issueAt(doc, ['spec', 'probes', kind, 'notify'], 'probe.notify-kind', `a notify probe passes once, when the process says it is ready: it cannot be a ${kind} probe, which is checked for as long as the process runs`, `move it to spec.probes.startup, and give ${kind} an exec, http or tcp probe if it needs one`, 'key'));
    }
    if (probes.startup?.notify && driver !== 'exec') {
      issues.push(issueAt(doc, ['spec', 'probes', 'startup', 'notify'], 'probe.notify-driver', `driver ${driver} cannot hand the process a descriptor of pm's: notify works for exec processes only`, 'use an exec, http or tcp startup probe', 'key'));
    }
  }
}

/** Empty arguments are legitimate (`--save ""`), but an empty program name can never run. */
function checkPrograms(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  for (const { doc, manifest } of processes) {
    const commands: [readonly (string | number)[], readonly string[]][] = manifest.spec.exec ? [[['spec', 'exec', 'command', 0], manifest.spec.exec.command]] : [];
    for (const kind of ['startup', 'readiness', 'liveness'] as const) {
      const exec = manifest.spec.probes[kind]?.exec;
      if (exec) commands.push([['spec', 'probes', kind, 'exec', 'command', 0], exec.command]);
    }
    for (const kind of ['preStart', 'postStart', 'preStop'] as const) {
      const hook = manifest.spec.hooks[kind];
      if (hook) commands.push([['spec', 'hooks', kind, 'command', 0], hook.command]);
    }
    const script = manifest.spec.restartPolicy.script;
    if (script) commands.push([['spec', 'restartPolicy', 'script', 'command', 0], script.command]);
    for (const [path, command] of commands) {
      if (command[0] !== '') continue;
      issues.push(issueAt(doc, path, 'command.empty-program', `${path.slice(0, -1).join('.')}[0] is empty: the first item is the program to run`, 'put the program (a name found in PATH, or a path) first'));
    }
  }
}

/**
 * Index of the first item before `i` with the same key, or -1: a scan for the short lists
 * manifests have, a map for long ones (so a pathological list stays linear).
 */
function earlierFinder(keys: readonly (string | undefined)[]): (i: number) => number {
  let first: Map<string, number> | undefined;
  if (keys.length > 16) {
    first = new Map();
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i];
      if (key !== undefined) first.set(key, i);
    }
  }
  return (i) => {
    const key = keys[i];
    if (key === undefined) return -1;
    const at = first ? (first.get(key) as number) : keys.indexOf(key);
    return at === i ? -1 : at;
  };
}

/** The dependency graph in compressed form: edges of process i are offsets[i] .. offsets[i+1]. */
export interface Graph {
  names: readonly string[];
  offsets: Int32Array;
  /** Index of the process depended on. */
  targets: Int32Array;
  /** Index of the dependsOn entry declaring the edge. */
  entries: Int32Array;
}

function checkDependencies(
  processes: readonly ValidDocument[],
  known: ReadonlyMap<string, unknown> | undefined,
  issues: ManifestIssue[],
): Graph {
  const names = processes.map((p) => p.manifest.metadata.name);
  const indexByName = new Map(names.map((name, i) => [name, i]));
  const offsets = new Int32Array(processes.length + 1);
  const targets: number[] = [];
  const entries: number[] = [];
  // "Did you mean" scans the names: offered for the first few missing names only.
  let suggestionsLeft = 20;
  processes.forEach((p, i) => {
    const name = names[i] as string;
    const dependsOn = p.manifest.spec.dependsOn;
    const earlier = earlierFinder(dependsOn.map((dep) => dep.name));
    for (let j = 0; j < dependsOn.length; j++) {
      const dep = dependsOn[j] as ProcessManifest['spec']['dependsOn'][number];
      const at = ['spec', 'dependsOn', j, 'name'];
      const first = earlier(j);
      if (dep.name === name) {
        issues.push(issueAt(p.doc, at, 'dependency.self', `${name} depends on itself`, 'remove this entry: a process cannot wait for itself'));
        continue;
      }
      if (first !== -1) {
        issues.push(
          issueAt(p.doc, at, 'dependency.duplicate', `${name} lists dependency "${dep.name}" twice (also spec.dependsOn[${first}])`, 'remove one of the two entries'),
        );
        continue;
      }
      const target = indexByName.get(dep.name);
      if (target === undefined) {
        if (known && !known.has(dep.name)) {
          const guess = suggestionsLeft-- > 0 ? closest(dep.name, names.slice(0, 2000)) : undefined;
          issues.push(
            issueAt(
              p.doc,
              at,
              'dependency.missing',
              `${name} depends on "${dep.name}", which is not in the set${guess ? ` (did you mean "${guess}"?)` : ''}`,
              'the set must contain every process it depends on: add its manifest or remove the dependency',
            ),
          );
        }
        continue;
      }
      targets.push(target);
      entries.push(j);
      const policy = (processes[target] as ValidDocument).manifest.spec.restartPolicy.policy;
      if (dep.condition === 'completed' && policy === 'always') {
        issues.push(
          issueAt(
            p.doc,
            ['spec', 'dependsOn', j, 'condition'],
            'dependency.never-completes',
            `${name} waits for "${dep.name}" to complete, but ${dep.name} has restartPolicy.policy: always, so it never completes`,
            `set restartPolicy.policy: on-failure or never on ${dep.name}, or use condition: ready`,
          ),
        );
      }
    }
    offsets[i + 1] = targets.length;
  });
  return { names, offsets, targets: Int32Array.from(targets), entries: Int32Array.from(entries) };
}

/** Longest cycle spelled out in full; longer ones show their ends. */
const MAX_CYCLE_NAMES = 20;

export interface Cycle {
  /** `api -> worker -> api` */
  path: string;
  /** The process whose dependsOn entry closes the cycle, and that entry's index. */
  process: number;
  entry: number;
}

/**
 * Depth-first search, iterative (no recursion limit), from processes in name order following
 * dependsOn in declared order, so the result is deterministic. Each edge back into the current
 * path closes one cycle; removing every reported edge leaves the graph acyclic. O(V + E).
 */
export function findCycles(graph: Graph): Cycle[] {
  const { names, offsets, targets, entries } = graph;
  const count = names.length;
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => {
    const x = names[a] as string;
    const y = names[b] as string;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const NEW = 0;
  const ON_PATH = 1;
  const DONE = 2;
  const state = new Uint8Array(count);
  const pathIndex = new Int32Array(count);
  const cursor = new Int32Array(count);
  const path = new Int32Array(count);
  let depth = 0;
  const cycles: Cycle[] = [];
  for (const start of order) {
    if (state[start] !== NEW) continue;
    state[start] = ON_PATH;
    cursor[start] = offsets[start] as number;
    path[depth++] = start;
    while (depth > 0) {
      const current = path[depth - 1] as number;
      const edge = cursor[current] as number;
      if (edge === offsets[current + 1]) {
        state[current] = DONE;
        depth--;
        continue;
      }
      cursor[current] = edge + 1;
      const target = targets[edge] as number;
      if (state[target] === NEW) {
        state[target] = ON_PATH;
        cursor[target] = offsets[target] as number;
        pathIndex[target] = depth;
        path[depth++] = target;
      } else if (state[target] === ON_PATH) {
        const from = pathIndex[target] as number;
        cycles.push({ path: spell(path, from, depth, names), process: current, entry: entries[edge] as number });
      }
    }
  }
  return cycles;
}

/** Names of path[from..to) and back to path[from], eliding the middle of very long cycles. */
function spell(path: Int32Array, from: number, to: number, names: readonly string[]): string {
  const length = to - from;
  const at = (i: number): string => names[path[from + i] as number] as string;
  const shown: string[] = [];
  if (length <= MAX_CYCLE_NAMES) {
    for (let i = 0; i < length; i++) shown.push(at(i));
  } else {
    const half = MAX_CYCLE_NAMES / 2;
    for (let i = 0; i < half; i++) shown.push(at(i));
    shown.push(`... (${length - MAX_CYCLE_NAMES} more) ...`);
    for (let i = length - half; i < length; i++) shown.push(at(i));
  }
  shown.push(at(0));
  return shown.join(' -> ');
}

function checkPorts(processes: readonly ValidDocument[], issues: ManifestIssue[]): void {
  /** `8080/tcp` → the first process and port entry declaring it. */
  const owners = new Map<string, [ValidDocument, number]>();
  for (const p of processes) {
    const { spec } = p.manifest;
    const name = p.manifest.metadata.name;
    const portNames = spec.ports.map((port) => port.name);
    const earlierName = earlierFinder(portNames);
    spec.ports.forEach((port, i) => {
      const firstName = earlierName(i);
      if (firstName !== -1) {
        issues.push(
          issueAt(
            p.doc,
            ['spec', 'ports', i, 'name'],
            'port.duplicate-name',
            `${name} names two ports "${port.name}" (also spec.ports[${firstName}])`,
            'give each port of a process its own name',
          ),
        );
      }
      const key = `${port.port}/${port.protocol}`;
      const owner = owners.get(key);
      const at = ['spec', 'ports', i, 'port'];
      if (!owner) {
        owners.set(key, [p, i]);
      } else if (owner[0] === p) {
        issues.push(issueAt(p.doc, at, 'port.duplicate', `${name} declares port ${key} twice (also spec.ports[${owner[1]}])`, 'remove one of the two entries'));
      } else {
        const [other, index] = owner;
        issues.push(
          issueAt(
            p.doc,
            at,
            'port.conflict',
            `port ${key} is also declared by ${other.manifest.metadata.name} at ${where(other.doc, ['spec', 'ports', index, 'port'])}`,
            'two processes cannot listen on the same port: change one of them',
          ),
        );
      }
    });
    checkProbePorts(p, portNames, issues);
  }
}

function checkProbePorts(p: ValidDocument, portNames: readonly (string | undefined)[], issues: ManifestIssue[]): void {
  const { probes } = p.manifest.spec;
  for (const kind of ['startup', 'readiness', 'liveness'] as const) {
    const probe = probes[kind];
    for (const via of ['http', 'tcp'] as const) {
      const port = probe?.[via]?.port;
      if (typeof port !== 'string' || portNames.includes(port)) continue;
      const declared = portNames.filter((name): name is string => name !== undefined);
      const guess = closest(port, declared);
      issues.push(
        issueAt(
          p.doc,
          ['spec', 'probes', kind, via, 'port'],
          'probe.unknown-port',
          `spec.probes.${kind}.${via}.port names port "${port}", which spec.ports of ${p.manifest.metadata.name} does not declare`,
          guess
            ? `did you mean "${guess}"? Use one of: ${declared.join(', ')}, or a port number`
            : declared.length > 0
              ? `use one of: ${declared.join(', ')}, or a port number`
              : `name a port in spec.ports (- name: ${port}), or use a port number`,
        ),
      );
    }
  }
}
