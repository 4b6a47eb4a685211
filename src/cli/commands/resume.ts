import { controlCommand } from '../control-command.js';

export const resumeCommand = controlCommand('resume', {
  summary: 'Start a paused process again.',
  description: ['Ends a pm pause: the process starts again (once its dependencies hold), whatever its restart policy.'],
  examples: ['pm resume worker'],
});
