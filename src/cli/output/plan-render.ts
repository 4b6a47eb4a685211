// `pm diff` / `pm apply` plan output: one line per action with its reason, then the field changes,
// then the order in which the waves will act.
import type { Plan, Action } from '../../plan/types.js';
import { describeAction, describeChange } from '../../plan/explain.js';
import type { Style } from './style.js';

const SYMBOL: Record<Action['kind'], string> = { start: '+', restart: '~', update: '~', delete: '-' };

export function renderPlan(plan: Plan, style: Style): string {
  const count = (kind: Action['kind']): number => plan.actions.filter((a) => a.kind === kind).length;
  const lines: string[] = [];
  const summary = `${count('start')} to start, ${count('restart')} to restart, ${count('update')} to update in place, ${count('delete')} to delete; ${plan.unchanged.length} unchanged`;
  lines.push(plan.actions.length === 0 ? `No changes: ${summary}.` : `Plan: ${summary}.`);
  if (plan.actions.length > 0 || plan.orphans.length > 0) lines.push('');
  const width = Math.max(0, ...plan.actions.map((a) => a.name.length), ...plan.orphans.map((o) => o.name.length));
  const paint = (kind: Action['kind'], text: string): string =>
    kind === 'start' ? style.green(text) : kind === 'delete' ? style.red(text) : style.yellow(text);
  for (const action of plan.actions) {
    lines.push(`  ${paint(action.kind, `${SYMBOL[action.kind]} ${action.kind.padEnd(7)}`)} ${style.bold(action.name.padEnd(width))}   ${describeAction(action)}`);
    for (const change of action.changes) {
      const tag = change.needsRestart || action.kind === 'update' ? '' : style.dim('  (no restart needed)');
      lines.push(`      ${style.dim(describeChange(change))}${tag}`);
    }
  }
  for (const orphan of plan.orphans) {
    const why = {
      'no-prune': 'no manifest here declares it any more; pass --prune to delete it',
      selector: 'no manifest here declares it any more, but its labels do not match -l; left alone',
      'out-of-scope': `applied from ${orphan.source}, outside the -f paths given; left alone`,
    }[orphan.whyKept];
    lines.push(`  ${style.cyan('! keep   ')} ${style.bold(orphan.name.padEnd(width))}   ${why}`);
  }
  if (plan.stopWaves.length > 0 || plan.startWaves.length > 0) {
    lines.push('', 'Order:');
    if (plan.stopWaves.length > 0) lines.push(`  stop   ${renderWaves(plan.stopWaves)}`);
    if (plan.startWaves.length > 0) lines.push(`  start  ${renderWaves(plan.startWaves)}`);
  }
  return `${lines.join('\n')}\n`;
}

function renderWaves(waves: string[][]): string {
  return waves.map((wave, i) => `${i + 1}: ${wave.join(', ')}`).join('   ');
}
