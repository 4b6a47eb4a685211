// Signal numbers to names, for exits reported by number (a pidfd's siginfo, systemd, an engine's
// 128 + n). Where two names share a number, the first in os.constants.signals wins, as Node's own
// 'exit' event names it: SIGABRT, not SIGIOT; SIGIO, not SIGPOLL.
import { constants } from 'node:os';

const NAMES = new Map<number, NodeJS.Signals>();
for (const [name, number] of Object.entries(constants.signals)) if (!NAMES.has(number)) NAMES.set(number, name as NodeJS.Signals);

/** The signal's name, or undefined for a number this system has no signal for. */
export function signalName(signal: number): NodeJS.Signals | undefined {
  return NAMES.get(signal);
}
