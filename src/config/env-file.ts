// `--env-file PATH`: a .env file read with Node's own parser (util.parseEnv, the one behind
// process.loadEnvFile and `node --env-file`), merged into a copy so process.env is never touched.
import { readFile } from 'node:fs/promises';
import { parseEnv } from 'node:util';
import { ConfigError } from './errors.js';

/** `env` plus the file's variables; a variable already set in `env` always wins. */
export async function loadEnvFile(path: string, env: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError([{ where: `--env-file ${path}`, message: `cannot read the file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` }], 'check the path given to --env-file');
  }
  const merged: NodeJS.ProcessEnv = { ...env };
  for (const [name, value] of Object.entries(parseEnv(text))) {
    if (merged[name] === undefined && value !== undefined) merged[name] = value;
  }
  return merged;
}
