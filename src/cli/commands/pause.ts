import { controlCommand } from '../control-command.js';

export const pauseCommand = controlCommand('pause', {
  summary: 'Stop a process and hold it stopped (maintenance) until pm resume.',
  description: [
    'Stops the process the way a restart would (preStop hook, stop signal, SIGKILL after the grace',
    'period) and keeps it stopped: no restart policy, dependency or manifest change starts it. The',
    'pause survives a restart of the daemon.',
  ],
  examples: ['pm pause worker', 'pm pause api worker'],
});
