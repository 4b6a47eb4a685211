// Apply progress: on a terminal a live block with one line per process, redrawn in place;
// otherwise one plain line per state change, which reads well in CI logs.
import type { ProcessTracker } from '../../apply/tracker.js';
import type { Style } from './style.js';

export interface Progress {
  update(tracker: ProcessTracker): void;
  /** Draws the final state (terminal) and stops redrawing. */
  finish(): void;
}

export function makeProgress(stream: NodeJS.WriteStream, live: boolean, style: Style): Progress {
  return live ? new LiveProgress(stream, style) : new LineProgress(stream, style);
}

function paintState(tracker: ProcessTracker, style: Style, width = 0): string {
  const text = tracker.state.padEnd(width);
  if (tracker.state === 'ready' || tracker.state === 'completed') return style.green(text);
  if (tracker.state === 'failed' || tracker.state === 'skipped') return style.red(text);
  return style.yellow(text);
}

class LineProgress implements Progress {
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly style: Style,
  ) {}
  update(tracker: ProcessTracker): void {
    this.stream.write(`${tracker.name}: ${paintState(tracker, this.style)}${tracker.detail ? ` (${tracker.detail})` : ''}\n`);
  }
  finish(): void {}
}

class LiveProgress implements Progress {
  private readonly rows = new Map<string, ProcessTracker>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly style: Style,
  ) {}
  update(tracker: ProcessTracker): void {
    if (this.finished) return;
    this.rows.set(tracker.name, tracker);
    // Redraw at most every 80 ms: probe results can change faster than anyone reads.
    this.timer ??= setTimeout(() => this.draw(), 80);
  }
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.draw();
  }
  private draw(): void {
    this.timer = undefined;
    const width = Math.max(0, ...[...this.rows.keys()].map((n) => n.length));
    const columns = this.stream.columns || 120;
    // A line must fit the terminal, or it wraps and the cursor-up redraw lands in the wrong place:
    // measure and cut the plain text, then colour it.
    const lines = [...this.rows.values()].map((t) => {
      const head = `  ${t.name.padEnd(width)}   ${t.state.padEnd(9)}`;
      const room = columns - 1 - head.length - 2;
      const detail = !t.detail || room <= 1 ? '' : t.detail.length > room ? `${t.detail.slice(0, room - 1)}…` : t.detail;
      return `  ${t.name.padEnd(width)}   ${paintState(t, this.style, 9)}${detail ? `  ${this.style.dim(detail)}` : ''}`;
    });
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    out += lines.map((l) => `\x1b[2K${l}\n`).join('');
    this.stream.write(out);
    this.drawn = lines.length;
  }
}
