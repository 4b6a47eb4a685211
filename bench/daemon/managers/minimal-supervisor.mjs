// The least a Node supervisor can do: spawn the program in its own session, and spawn it again the
// moment its 'exit' event arrives. bench/daemon.ts runs it beside pm and PM2 as the floor for a
// Node-based manager (libuv's SIGCHLD handling, the exit event, one spawn) with nothing else.
// Usage: node minimal-supervisor.mjs PROGRAM [ARGS...]; SIGTERM stops the program, then itself.
import { spawn } from 'node:child_process';

const [file, ...args] = process.argv.slice(2);
let stopping = false;
let child;

function start() {
  child = spawn(file, args, { stdio: 'ignore', detached: true });
  child.once('exit', () => {
    if (stopping) process.exit(0);
    start();
  });
}

process.on('SIGTERM', () => {
  stopping = true;
  child.kill('SIGTERM');
});
start();
