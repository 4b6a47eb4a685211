// What commands share: the store, the driver, and a fresh observation of every managed process.
import type { Driver, Observation } from '../drivers/driver.js';
import { createDrivers } from '../drivers/index.js';
import { FileStore } from '../store/file-store.js';
import type { ProcessRecord } from '../store/records.js';
import { limitConcurrency } from '../util/limit.js';
import type { Cli } from './command.js';

export interface State {
  store: FileStore;
  driver: Driver;
}

export async function openState(cli: Cli): Promise<State> {
  const store = await FileStore.open(cli.stateDir);
  return { store, driver: createDrivers({ stateDir: store.dir, env: cli.env }) };
}

/** Asks the driver about every record at once (bounded), so `pm get` with many processes stays quick. */
export async function observeAll(driver: Driver, records: ReadonlyMap<string, ProcessRecord>): Promise<Map<string, Observation>> {
  const limit = limitConcurrency(64);
  const entries = await Promise.all(
    [...records.values()].map((record) =>
      limit(async (): Promise<[string, Observation]> => {
        if (!record.handle) return [record.name, { state: 'missing' }];
        try {
          return [record.name, withRecordedExit(await driver.inspect(record.handle), record)];
        } catch (error) {
          // One engine that does not answer must not hide every other process.
          return [record.name, { state: 'unknown', reason: (error as Error).message }];
        }
      }),
    ),
  );
  return new Map(entries);
}

/**
 * A driver that did not start a process cannot learn how it ended; an earlier pm command that was
 * its parent, or that stopped it, may have recorded it. Prefer that record when it belongs to this
 * instance.
 */
export function withRecordedExit(observation: Observation, record: ProcessRecord): Observation {
  if (observation.state !== 'exited' || observation.exit.known) return observation;
  const recorded = record.lastExit;
  const startedAt = record.startedAt ? Date.parse(record.startedAt) : Number.NaN;
  // Known from an earlier parent, or a stop pm made itself (signal recorded, code unknown).
  if (recorded && (recorded.known || recorded.signal) && recorded.at >= startedAt) return { state: 'exited', exit: recorded };
  return observation;
}
