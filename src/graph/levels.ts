// Dependency levels ("waves") of a subset of a DAG: a node's level is one more than the highest
// level among its dependencies that are in the same subset, 0 when it has none there.
// Nodes of one level do not depend on each other, so they may act in parallel.

/**
 * @param nodes the subset to order
 * @param dependenciesOf edges of the whole graph; edges leaving the subset are ignored
 * @returns levels, each sorted by name (deterministic output)
 * Validation guarantees a declared set is acyclic; should records from separate applies ever form
 * a cycle, its members are put together in a last level rather than lost.
 */
export function dependencyLevels(nodes: Iterable<string>, dependenciesOf: (node: string) => readonly string[]): string[][] {
  const subset = new Set(nodes);
  const pending = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const node of subset) {
    let count = 0;
    for (const dep of new Set(dependenciesOf(node))) {
      if (!subset.has(dep)) continue;
      count++;
      let list = dependents.get(dep);
      if (!list) dependents.set(dep, (list = []));
      list.push(node);
    }
    pending.set(node, count);
  }
  const levels: string[][] = [];
  let current = [...subset].filter((n) => pending.get(n) === 0);
  let placed = 0;
  while (current.length > 0) {
    current.sort();
    levels.push(current);
    placed += current.length;
    const next: string[] = [];
    for (const node of current) {
      for (const dependent of dependents.get(node) ?? []) {
        const left = (pending.get(dependent) ?? 0) - 1;
        pending.set(dependent, left);
        if (left === 0) next.push(dependent);
      }
    }
    current = next;
  }
  if (placed !== subset.size) {
    levels.push([...subset].filter((n) => (pending.get(n) ?? 0) > 0).sort());
  }
  return levels;
}
