// What stop() may signal, decided again at every step, because the answer changes while it waits:
//   - while the leader holds its PID (running, or a zombie not yet reaped), the group id cannot
//     name any other group: the whole group is signalled at once, kill(-pgid);
//   - once the leader is gone, the number may name a stranger's group (a double-forking daemon
//     leaves leaderless groups behind): only members carrying the instance's PM_INSTANCE marker are
//     signalled, one by one. A handle from before markers existed signals nothing then.
import type { ExecHandle } from '../driver.js';
import { GroupWatch, signalGroup, type SignalOutcome } from './group.js';
import { isStillMember, listMarkedMembers, signalMember, type Member } from './instance.js';
import { readProcessIdentity, readProcStatSync } from './proc.js';
import type { SpawnedChild } from './spawn.js';

export class StopTarget {
  readonly #handle: ExecHandle;
  readonly #own: SpawnedChild | undefined;
  readonly #group: GroupWatch;
  /** Marked members seen last; re-scanned only once none of them is left, to keep polling cheap. */
  #marked: Member[] = [];

  /** `own` is the child when this driver spawned it: then its exit event says whether it was reaped. */
  constructor(handle: ExecHandle, own: SpawnedChild | undefined) {
    this.#handle = handle;
    this.#own = own;
    this.#group = new GroupWatch(handle.pgid);
  }

  /** Is anything of this instance still running? */
  async alive(): Promise<boolean> {
    // An own child whose exit event has not arrived is running, or a zombie only this pm reaps.
    if (this.#own && this.#own.exit === undefined) return true;
    if (await this.#leaderHoldsGroup()) return this.#group.alive();
    const pgid = this.#handle.pgid;
    if (this.#marked.some((m) => isStillMember(m, pgid))) return true;
    // An empty group has no marked member either: one syscall instead of a /proc scan (~17 ms
    // with 80 processes here), which matters on the daemon's crash → restart path.
    if (signalGroup(pgid, 0) === 'gone') {
      this.#marked = [];
      return false;
    }
    this.#marked = await this.#scanMarked();
    return this.#marked.length > 0;
  }

  /**
   * Sends `signal` to what is ours: the group while the leader holds it, else each marked member.
   * Returns 'denied' when any of them may not be signalled by pm's user.
   */
  async signal(signal: NodeJS.Signals): Promise<SignalOutcome> {
    if (await this.#leaderHoldsGroup()) return signalGroup(this.#handle.pgid, signal);
    this.#marked = await this.#scanMarked();
    let outcome: SignalOutcome = 'gone';
    for (const member of this.#marked) {
      const sent = signalMember(member, this.#handle.pgid, signal);
      if (sent === 'denied' || (sent === 'sent' && outcome === 'gone')) outcome = sent;
    }
    return outcome;
  }

  /**
   * Whether the leader still holds its PID, and with it the group id. Read synchronously on Linux,
   * right before the caller signals, so the answer is as fresh as it can be.
   */
  async #leaderHoldsGroup(): Promise<boolean> {
    const { pid, startTime } = this.#handle;
    // Node reaps its own children in the event loop, never between this check and the kill.
    if (this.#own) return this.#own.exit === undefined;
    if (process.platform === 'linux') return readProcStatSync(pid)?.startTime === startTime;
    return (await readProcessIdentity(pid))?.startTime === startTime;
  }

  #scanMarked(): Promise<Member[]> {
    const { instance, pgid } = this.#handle;
    return instance === undefined ? Promise.resolve([]) : listMarkedMembers(pgid, instance);
  }
}
