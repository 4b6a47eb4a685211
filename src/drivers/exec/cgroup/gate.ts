// Joining a run's cgroups before its first instruction, with the same PID: the process is spawned
// as a tiny /bin/sh that waits on a descriptor (3, or 4 when a notify probe has 3) until pm has
// written its PID into each cgroup, then
// execs the program. pm does the writing (not the child): a child running as spec.exec.user could
// not write root's cgroup.procs, and cgroup v2 asks the writer to own the common ancestor. If pm
// dies or fails first, the child reads end-of-file and exits 125: the program never runs unconfined.
import type { ChildProcess } from 'node:child_process';
import { close, write } from 'node:fs';
import type { Socket } from 'node:net';

/** The shell for the gate. */
export const SH = '/bin/sh';

/** The descriptor the gate waits on: 3, unless the process's notify descriptor is 3. */
export function gateFd(notifyFd: number | undefined): 3 | 4 {
  return notifyFd === 3 ? 4 : 3;
}

/** A fixed script per descriptor: the program and its arguments are positional parameters, never interpolated. */
export function gateScript(fd: 3 | 4): string {
  return `read -r go <&${fd} && [ "$go" = go ] || exit 125; exec ${fd}<&-; exec "$@"`;
}

/** Exit code of a gate that was never opened (pm could not put the process in its cgroups). */
export const GATE_CLOSED_EXIT = 125;

/** The argv that runs `argv` behind the gate; the child needs a pipe as descriptor `fd`. */
export function behindGate(argv: readonly [string, ...string[]], fd: 3 | 4 = 3): [string, ...string[]] {
  return [SH, '-c', gateScript(fd), 'pm-exec', ...argv];
}

/** Lets the gated child go on to exec its program. Rejects when the pipe fails (the child is gone). */
export async function openGate(child: ChildProcess, fd: 3 | 4 = 3): Promise<void> {
  const pipe = child.stdio[fd] as Socket | null | undefined;
  if (!pipe) throw new Error(`the gate pipe (descriptor ${fd}) is missing`);
  pipe.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      pipe.once('error', reject);
      pipe.end('go\n', () => resolve());
    });
  } finally {
    pipe.destroy();
  }
}

/** Closes the gate for good: the child exits GATE_CLOSED_EXIT without running the program. */
export function closeGate(child: ChildProcess, fd: 3 | 4 = 3): void {
  (child.stdio[fd] as Socket | null | undefined)?.destroy();
}

/** A gated child's pipe: let the child go on to its program, or close it so it never runs it. */
export interface Gate {
  open(): Promise<void>;
  close(): void;
}

/** The gate of a child Node spawned with a 'pipe' at `fd`. */
export function childProcessGate(child: ChildProcess, fd: 3 | 4): Gate {
  return { open: () => openGate(child, fd), close: () => closeGate(child, fd) };
}

/** The gate of a child the native spawner started: pm holds the pipe's write end, `writeFd`. */
export class PipeGate implements Gate {
  #fd: number;

  constructor(writeFd: number) {
    this.#fd = writeFd;
  }

  /** Writes "go" (3 bytes: a pipe takes them whole) and closes the write end; rejects when the child is gone (EPIPE). */
  open(): Promise<void> {
    const fd = this.#take();
    if (fd === undefined) return Promise.reject(new Error('the gate is already closed'));
    return new Promise<void>((resolve, reject) => {
      write(fd, 'go\n', (writeError) => close(fd, (closeError) => (writeError ?? closeError ? reject(writeError ?? closeError) : resolve())));
    });
  }

  close(): void {
    const fd = this.#take();
    if (fd !== undefined) close(fd, () => undefined);
  }

  #take(): number | undefined {
    const fd = this.#fd;
    this.#fd = -1;
    return fd >= 0 ? fd : undefined;
  }
}
