// Demo worker: polls the API and reports what it finds, until told to stop.
const api = process.env.API_URL ?? 'http://127.0.0.1:18080';
const everyMs = Number(process.env.INTERVAL_MS ?? 5000);

async function tick() {
  try {
    const items = await (await fetch(`${api}/items`, { signal: AbortSignal.timeout(2000) })).json();
    console.log(`${new Date().toISOString()} ${items.filter((i) => !i.done).length} open item(s)`);
  } catch (error) {
    console.error(`${new Date().toISOString()} api unreachable: ${error.message}`);
  }
}
const timer = setInterval(tick, everyMs);
void tick();
process.on('SIGTERM', () => {
  clearInterval(timer);
  console.log('worker stopping');
});
