// Demo one-shot job: "migrates" a tiny JSON database, then exits 0. Safe to run again.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const dataDir = process.env.DATA_DIR ?? '.data';
const migrations = ['001_create_items', '002_add_done_flag', '003_seed'];
await mkdir(dataDir, { recursive: true });
const path = join(dataDir, 'db.json');
const db = JSON.parse(await readFile(path, 'utf8').catch(() => '{"applied":[],"items":[]}'));
for (const name of migrations) {
  if (db.applied.includes(name)) continue;
  if (name === '003_seed') db.items.push({ id: 1, title: 'try pm', done: false });
  db.applied.push(name);
  console.log(`applied ${name}`);
}
await writeFile(path, JSON.stringify(db, null, 2));
console.log(`database at version ${db.applied.length}`);
