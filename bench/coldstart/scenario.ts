// The scenario, generated once per bench run and handed to every manager, so that all of them do
// the same work: N processes in L levels of equal width; each process of level k > 0 depends on 2–3
// distinct processes of level k − 1, drawn from a seeded generator (the same seed, the same DAG).

export interface ColdProcess {
  /** l<level>-p<index>: a name every manager accepts ([a-z][a-z0-9-]*). */
  name: string;
  level: number;
  /** Names of the processes of the level below it must wait for (empty on level 0). */
  dependsOn: string[];
}

export interface Scenario {
  seed: number;
  levels: number;
  width: number;
  readyMs: number;
  processes: ColdProcess[];
}

/** mulberry32: small, seedable, good enough to draw a DAG. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function processName(level: number, index: number, width: number): string {
  return `l${level}-p${String(index).padStart(String(width - 1).length, '0')}`;
}

/** The DAG: `count` processes in `levels` levels (count must divide evenly), each above level 0 with 2–3 dependencies. */
export function generateScenario(options: { count: number; levels: number; seed: number; readyMs: number }): Scenario {
  const { count, levels, seed, readyMs } = options;
  if (levels < 1 || count % levels !== 0) throw new RangeError(`${count} processes do not split evenly into ${levels} levels`);
  const width = count / levels;
  const random = seededRandom(seed);
  const processes: ColdProcess[] = [];
  for (let level = 0; level < levels; level++) {
    for (let index = 0; index < width; index++) {
      const dependsOn: string[] = [];
      if (level > 0) {
        const wanted = Math.min(width, 2 + Math.floor(random() * 2));
        const pool = Array.from({ length: width }, (_, i) => i);
        for (let k = 0; k < wanted; k++) {
          const [pick] = pool.splice(Math.floor(random() * pool.length), 1);
          dependsOn.push(processName(level - 1, pick as number, width));
        }
        dependsOn.sort();
      }
      processes.push({ name: processName(level, index, width), level, dependsOn });
    }
  }
  return { seed, levels, width, readyMs, processes };
}

/** The DAG in a few lines: one per process above level 0, "l1-p00 ← l0-p03 l0-p11". */
export function describeDag(scenario: Scenario): string[] {
  return scenario.processes.filter((p) => p.level > 0).map((p) => `${p.name} ← ${p.dependsOn.join(' ')}`);
}

/** The critical path: every level waits for the one below to be ready, so no manager can finish before levels × ready-ms. */
export function criticalPathMs(scenario: Scenario): number {
  return scenario.levels * scenario.readyMs;
}
