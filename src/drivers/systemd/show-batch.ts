// Unit states asked for at about the same time are read with ONE `systemctl show`: the daemon's
// resync inspects every process at once, and `pm get` observes them all together, so 100 units
// cost one process spawn instead of 100. Requests made in the same turn of the event loop (and
// those made while a read runs) join one batch; a failed read rejects only that batch.
import type { ShownUnit } from './show.js';
import type { CallOptions, Systemctl } from './systemctl.js';
import { validateUnitName } from './unit-name.js';

interface Pending {
  unit: string;
  resolve: (state: ShownUnit) => void;
  reject: (error: unknown) => void;
}

export class ShowBatcher {
  readonly #systemctl: Pick<Systemctl, 'showUnits'>;
  #pending: Pending[] = [];
  #scheduled = false;
  #reading = false;
  /** How many `systemctl show` calls were made (tests, metrics). */
  calls = 0;

  constructor(systemctl: Pick<Systemctl, 'showUnits'>) {
    this.#systemctl = systemctl;
  }

  /** The unit's state, read together with every other unit asked for meanwhile. */
  show(unit: string): Promise<ShownUnit> {
    // A bad name fails alone, before it can spoil a batch.
    validateUnitName(unit);
    return new Promise<ShownUnit>((resolve, reject) => {
      this.#pending.push({ unit, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#reading) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(options: CallOptions = {}): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    this.#reading = true;
    try {
      this.calls++;
      const states = await this.#systemctl.showUnits(
        batch.map((p) => p.unit),
        options,
      );
      for (const p of batch) {
        const state = states.get(p.unit);
        if (state) p.resolve(state);
        else p.reject(new Error(`systemctl show gave no state for ${p.unit}`));
      }
    } catch (error) {
      for (const p of batch) p.reject(error);
    } finally {
      this.#reading = false;
      // What was asked for during this read is the next batch.
      if (this.#pending.length > 0) this.#schedule();
    }
  }
}
