// Builds fully-defaulted manifests for planner tests, through the real schema, so tests never
// restate the defaults.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { ProcessManifest, Dependency } from '../../src/manifest/types.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/process.schema.json', import.meta.url), 'utf8')) as object;
const validate = new Ajv({ useDefaults: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(schema);

export interface ManifestInput {
  name: string;
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  dependsOn?: Partial<Dependency>[];
  policy?: 'always' | 'on-failure' | 'never';
  type?: 'service' | 'oneshot';
  stopGraceSeconds?: number;
}

export function manifest(input: ManifestInput): ProcessManifest {
  const doc: Record<string, unknown> = {
    apiVersion: 'pm.dev/v1alpha1',
    kind: 'Process',
    metadata: { name: input.name, ...(input.labels ? { labels: input.labels } : {}) },
    spec: {
      exec: { command: input.command, ...(input.cwd ? { cwd: input.cwd } : {}), ...(input.env ? { env: input.env } : {}) },
      ...(input.dependsOn ? { dependsOn: input.dependsOn } : {}),
      ...(input.type ? { type: input.type } : {}),
      ...(input.policy ? { restartPolicy: { policy: input.policy } } : {}),
      ...(input.stopGraceSeconds !== undefined ? { stop: { gracePeriodSeconds: input.stopGraceSeconds } } : {}),
    },
  };
  if (!validate(doc)) throw new Error(`test manifest ${input.name} is invalid: ${JSON.stringify(validate.errors)}`);
  return doc as unknown as ProcessManifest;
}
