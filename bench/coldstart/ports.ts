// TCP ports for the children that pm probes: a block of consecutive ports on 127.0.0.1, each
// checked free by binding it (below Linux's ephemeral range, so probes' own sockets never take one).
import { createServer } from 'node:net';

const LOW = 20_000;
const HIGH = 32_000;

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free ports; a few random places are tried before giving up. */
export async function freePortBlock(count: number, random: () => number = Math.random): Promise<number[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = LOW + Math.floor(random() * (HIGH - LOW - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    let free = true;
    for (const port of ports) {
      if (!(await canBind(port))) {
        free = false;
        break;
      }
    }
    if (free) return ports;
  }
  throw new Error(`no block of ${count} free TCP ports found between ${LOW} and ${HIGH}`);
}
