/**
 * Left-aligned columns separated by three spaces, like kubectl get. A cell's line breaks and tabs
 * become " ⏎ " and a space: one row stays one line, so grep and head keep working on the output.
 */
export function formatTable(header: string[], rows: string[][]): string {
  const cellsOf = (cells: string[]): string[] => cells.map((c) => c.replace(/\r?\n/g, ' ⏎ ').replace(/[\t\r]/g, ' '));
  const flat = rows.map(cellsOf);
  const widths = header.map((h, i) => Math.max(h.length, ...flat.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...flat.map(line)].join('\n') + '\n';
}
