// The state of one process during an apply, with awaitable dependency conditions. Conditions are
// latched: once a process has been ready, a dependent waiting for `ready` is released even if the
// process later completes.

export const TrackState = {
  pending: 'pending',
  waiting: 'waiting',
  starting: 'starting',
  running: 'running',
  ready: 'ready',
  completed: 'completed',
  failed: 'failed',
  skipped: 'skipped',
} as const;
export type TrackState = (typeof TrackState)[keyof typeof TrackState];

export type Condition = 'started' | 'ready' | 'completed';

export class ConditionUnmet extends Error {
  constructor(
    readonly process: string,
    readonly condition: Condition,
    readonly why: string,
  ) {
    super(`${process} will not become ${condition}: ${why}`);
  }
}

export type TrackerListener = (tracker: ProcessTracker) => void;

export class ProcessTracker {
  readonly name: string;
  state: TrackState = TrackState.pending;
  /** Short human text: "pid 4242", "readiness: HTTP 503 (2 failures)", "exited with code 1". */
  detail = '';
  private readonly reached = { started: false, ready: false, completed: false };
  private readonly waiters = new Set<() => void>();
  private readonly onChange: TrackerListener;
  /** Closed when the apply is over: late events (an exit noticed while shutting down) change nothing. */
  private closed = false;

  constructor(name: string, onChange: TrackerListener = () => undefined) {
    this.name = name;
    this.onChange = onChange;
  }

  get final(): boolean {
    return this.state === 'ready' || this.state === 'completed' || this.state === 'failed' || this.state === 'skipped';
  }

  get converged(): boolean {
    return this.state === 'ready' || this.state === 'completed';
  }

  set(state: TrackState, detail = ''): void {
    if (this.closed || (this.state === state && this.detail === detail)) return;
    // A verdict stands: only the latched completed may follow ready (a job that finished).
    if (this.final && !(this.state === 'ready' && (state === 'completed' || state === 'failed'))) return;
    this.state = state;
    this.detail = detail;
    if (state === 'running' || state === 'ready' || state === 'completed') this.reached.started = true;
    if (state === 'ready' || state === 'completed') this.reached.ready = true;
    if (state === 'completed') this.reached.completed = true;
    this.onChange(this);
    for (const wake of [...this.waiters]) wake();
  }

  /** Only the detail changed (a probe result): listeners hear it, waiters need not wake. */
  note(detail: string): void {
    if (this.closed || this.detail === detail) return;
    this.detail = detail;
    this.onChange(this);
  }

  close(): void {
    this.closed = true;
    for (const wake of [...this.waiters]) wake();
  }

  holds(condition: Condition): boolean {
    return this.reached[condition];
  }

  /** Resolves when `condition` holds; rejects with ConditionUnmet once it never can, or on abort. */
  until(condition: Condition, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.reached[condition]) {
          resolve();
          return true;
        }
        const unmet = this.unmetReason(condition);
        if (unmet) {
          reject(new ConditionUnmet(this.name, condition, unmet));
          return true;
        }
        if (signal.aborted) {
          reject(signal.reason);
          return true;
        }
        return false;
      };
      if (check()) return;
      const wake = (): void => {
        if (check()) cleanup();
      };
      const cleanup = (): void => {
        this.waiters.delete(wake);
        signal.removeEventListener('abort', wake);
      };
      this.waiters.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  private unmetReason(_condition: Condition): string | undefined {
    if (this.state === 'failed' || this.state === 'skipped') return this.detail || this.state;
    return undefined;
  }
}
