// Explains why documents fail schemas/process.schema.json, with ajv (compiled once, on first use,
// only when some document is invalid). Every error is reported, minus ajv's noise: the per-branch errors of a
// failed anyOf/oneOf (one issue for the parent says it better), the inner error of a propertyNames
// failure, and repeated complaints about the same name.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ManifestIssue } from '../errors.js';
import { describe } from './hints.js';
import { parsePointer } from './locate.js';
import type { ParsedDocument } from './parse.js';
import type { ProcessManifest } from './types.js';
import { packagePath } from '../util/package-root.js';

type SchemaNode = Record<string, unknown>;

interface Compiled {
  validate: ValidateFunction<ProcessManifest>;
  /** For each schema object with anyOf/oneOf: every subschema its branches reach ($refs followed). */
  branches: Map<object, Set<object>>;
}

const SCHEMA_PATH = packagePath('schemas/process.schema.json');
let compiled: Compiled | undefined;

function compile(): Compiled {
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as SchemaNode;
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: true,
    strictRequired: false,
    allowUnionTypes: true,
    // Errors carry their schema and value, for hints; it costs nothing when a document is valid.
    verbose: true,
  });
  const validate = ajv.compile<ProcessManifest>(schema);
  const branches = new Map<object, Set<object>>();
  for (const node of reachable([schema], schema)) {
    const alternatives = node.anyOf ?? node.oneOf;
    if (Array.isArray(alternatives)) branches.set(node, reachable(alternatives, schema));
  }
  return { validate, branches };
}

/** Every schema object reachable from `start`, following local `$ref`s. */
function reachable(start: unknown[], root: SchemaNode): Set<SchemaNode> {
  const seen = new Set<SchemaNode>();
  const stack = [...start];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object' || seen.has(node as SchemaNode)) continue;
    if (Array.isArray(node)) {
      stack.push(...(node as unknown[]));
      continue;
    }
    const schema = node as SchemaNode;
    seen.add(schema);
    if (typeof schema.$ref === 'string' && schema.$ref.startsWith('#/definitions/')) {
      stack.push((root.definitions as SchemaNode)[schema.$ref.slice('#/definitions/'.length)]);
    }
    stack.push(...Object.values(schema));
  }
  return seen;
}

/** The compiled validator, built on first use (ajv compiles the schema to code once per process). */
export function schemaValidator(): Compiled {
  compiled ??= compile();
  return compiled;
}

/**
 * Every schema problem of a document, located and explained. Loaded (with ajv) only when
 * schema-check.ts found a document invalid.
 */
export function explainDocument(doc: ParsedDocument): ManifestIssue[] {
  const { validate, branches } = schemaValidator();
  if (validate(doc.data)) return [];
  const issues: ManifestIssue[] = [];
  for (const [error, detail] of collapse(validate.errors ?? [], branches)) {
    const described = describe(error, parsePointer(error.instancePath, doc.data), detail);
    const { line, col } = doc.locator.locate(described.path, described.at);
    issues.push({ code: `schema.${error.keyword}`, file: doc.source.display, line, col, message: described.message, hint: described.hint });
  }
  return issues;
}

function isUnder(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

const NAME_SHAPE_KEYWORDS = new Set(['pattern', 'minLength', 'maxLength']);

/** The errors worth reporting, each with the inner error that explains it (propertyNames). */
function collapse(errors: readonly ErrorObject[], branches: Map<object, Set<object>>): [ErrorObject, ErrorObject?][] {
  const alternatives = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const kept: [ErrorObject, ErrorObject?][] = [];
  const nameShapes = new Set<string>();
  for (const error of errors) {
    // Inner errors of a propertyNames failure carry the offending key; the failure itself is kept.
    if (error.propertyName !== undefined && error.keyword !== 'propertyNames') continue;
    const isBranchError = alternatives.some(
      (parent) =>
        parent !== error &&
        isUnder(error.instancePath, parent.instancePath) &&
        branches.get(parent.parentSchema as object)?.has(error.parentSchema as object) === true,
    );
    if (isBranchError) continue;
    if (NAME_SHAPE_KEYWORDS.has(error.keyword)) {
      // "" fails both minLength and pattern; one issue with the naming rule is enough.
      if (nameShapes.has(error.instancePath)) continue;
      nameShapes.add(error.instancePath);
    }
    const detail =
      error.keyword === 'propertyNames'
        ? errors.find(
            (inner) =>
              inner.keyword !== 'propertyNames' &&
              inner.instancePath === error.instancePath &&
              inner.propertyName === (error.params as { propertyName?: string }).propertyName,
          )
        : undefined;
    kept.push([error, detail]);
  }
  return kept;
}
