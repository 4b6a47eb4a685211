import { controlCommand } from '../control-command.js';

export const resetCommand = controlCommand('reset', {
  summary: "Close a process's circuit breaker and forget its backoff.",
  description: [
    'After repeated failures the circuit breaker stops automatic restarts (pm get shows CircuitOpen)',
    'until its cooldown ends. pm reset closes it by hand and forgets the counted failures, so the',
    'process is started again at once, as systemctl reset-failed does for a unit.',
  ],
  examples: ['pm reset api'],
});
