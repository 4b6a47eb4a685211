// How long creating a file takes in a folder, fresh and right after many deletions there: on ext4
// without a journal (as these VMs' root file system), creates are slower for a while after
// deletions, which is why bench:coldstart keeps every run's folder until it ends (bench/scratch-fs.ts).
// pm creates a log file and a notify file at a process's first start. Used for the figures of
// docs/benchmarks.md, scenario (b).
//
//   node bench/file-create.mjs [FOLDER (the temp folder)] [DELETED ...]   (default: 0 1000 5000)
// For each count: write that many small files, delete them, then time 200 creates (open O_CREAT,
// close) in a new folder beside them; three rounds. Everything made is removed.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CREATES = 200;
const ROUNDS = 3;
const [folder = tmpdir(), ...counts] = process.argv.slice(2);
const deletions = counts.length > 0 ? counts.map(Number) : [0, 1000, 5000];
const base = mkdtempSync(join(folder, 'pm-file-create-'));
try {
  for (const deleted of deletions) {
    const times = [];
    for (let round = 0; round < ROUNDS; round++) {
      const junk = mkdtempSync(join(base, 'junk-'));
      for (let i = 0; i < deleted; i++) writeFileSync(join(junk, String(i)), 'x');
      rmSync(junk, { recursive: true });
      const dir = mkdtempSync(join(base, 'creates-'));
      const began = process.hrtime.bigint();
      for (let i = 0; i < CREATES; i++) closeSync(openSync(join(dir, String(i)), 'a'));
      times.push(Number(process.hrtime.bigint() - began) / 1e6);
      rmSync(dir, { recursive: true });
    }
    console.log(`${String(deleted).padStart(6)} files deleted just before: ${times.map((ms) => `${ms.toFixed(1)} ms`).join(', ')} for ${CREATES} creates (${ROUNDS} rounds, in ${folder})`);
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
