// Demo HTTP API: serves the items the migration created. /ready answers 200 once the database is
// readable, which pm's readiness probe uses to gate the worker.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const port = Number(process.env.PORT ?? 18080);
const dataDir = process.env.DATA_DIR ?? '.data';
const load = async () => JSON.parse(await readFile(join(dataDir, 'db.json'), 'utf8'));

const server = createServer(async (req, res) => {
  try {
    const db = await load();
    if (req.url === '/ready') return res.writeHead(200).end('ready\n');
    if (req.url === '/items') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(db.items));
    res.writeHead(404).end('not found\n');
  } catch (error) {
    res.writeHead(503).end(`not ready: ${error.message}\n`);
  }
});
server.listen(port, '127.0.0.1', () => console.log(`api listening on http://127.0.0.1:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
