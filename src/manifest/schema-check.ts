// Is a document a valid manifest? Answered by the validator compiled from the schema at development
// time (validate.generated.ts), which also fills in defaults: a valid set never loads ajv. Why a
// document is invalid is schema-explain.ts's job.
import type { ProcessManifest } from './types.js';
import { validate } from './validate.generated.js';

/** Validates in place: on success the document has every schema default filled in. */
export function isValidManifest(data: unknown): data is ProcessManifest {
  return (validate as (data: unknown) => boolean)(data);
}
