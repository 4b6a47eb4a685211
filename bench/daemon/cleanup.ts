// Teardown for a benchmark that starts daemons: steps run last-registered first, once, whether the
// run ends, fails or is interrupted. run() is idempotent: every call returns the same promise.

export type CleanupStep = { label: string; run: () => Promise<void> | void };

export class Cleanup {
  readonly #steps: CleanupStep[] = [];
  #running: Promise<string[]> | undefined;

  /** True once teardown has begun: trials in flight should stop starting new work. */
  get started(): boolean {
    return this.#running !== undefined;
  }

  add(label: string, run: CleanupStep['run']): void {
    if (this.#running) throw new Error(`cleanup already running; cannot add "${label}"`);
    this.#steps.push({ label, run });
  }

  /** Runs every step (newest first); a failing step is reported and the others still run. Resolves with the failures. */
  run(): Promise<string[]> {
    this.#running ??= (async () => {
      const failures: string[] = [];
      for (const step of this.#steps.splice(0).reverse()) {
        try {
          await step.run();
        } catch (error) {
          failures.push(`${step.label}: ${(error as Error).message}`);
        }
      }
      return failures;
    })();
    return this.#running;
  }

  /** Ctrl-C or SIGTERM: tear down, then exit 130. A second Ctrl-C abandons the teardown. */
  onSignals(log: (line: string) => void): void {
    const handler = (signal: NodeJS.Signals): void => {
      log(`\n${signal}: shutting the managers down (Ctrl-C again to abandon; processes may be left behind)`);
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      void this.run().then((failures) => {
        for (const failure of failures) log(`cleanup: ${failure}`);
        process.exit(130);
      });
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  }
}
