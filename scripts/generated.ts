// What the generators share: write a generated file, or with `--check` fail when the checked-in
// copy is stale (npm test runs every generator that way); and types from a JSON Schema.
import { readFile, writeFile } from 'node:fs/promises';
import { compile, type JSONSchema } from 'json-schema-to-typescript';

export async function writeOrCheck(outPath: string, generated: string, regenerate: string): Promise<void> {
  if (process.argv.includes('--check')) {
    const current = await readFile(outPath, 'utf8').catch(() => '');
    if (current !== generated) {
      console.error(`${outPath} is stale: run \`${regenerate}\` and commit the result.`);
      process.exit(1);
    }
    return;
  }
  await writeFile(outPath, generated);
  console.log(`wrote ${outPath}`);
}

type SchemaNode = { [key: string]: unknown };

/**
 * Code only ever sees a document after ajv has applied the schema's defaults, so every property
 * that has a default is generated as required.
 */
function requireDefaulted(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(requireDefaulted);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const schema = node as SchemaNode;
  // A oneOf made only of `required` clauses constrains presence, not shape; json2ts would turn it
  // into an index-signature intersection, so it is left to ajv.
  if (Array.isArray(schema.oneOf) && schema.oneOf.every((c: SchemaNode) => Object.keys(c).join() === 'required')) {
    delete schema.oneOf;
  }
  const properties = schema.properties as Record<string, SchemaNode> | undefined;
  if (properties) {
    const required = new Set((schema.required as string[] | undefined) ?? []);
    for (const [key, prop] of Object.entries(properties)) {
      if (prop.default !== undefined) required.add(key);
    }
    if (required.size > 0) schema.required = [...required];
  }
  Object.values(schema).forEach(requireDefaulted);
}

/** TypeScript types for the schema at `schemaPath`, as code sees documents after defaults. */
export async function typesFromSchema(schemaPath: string, typeName: string, banner: string): Promise<string> {
  const schema = JSON.parse(await readFile(schemaPath, 'utf8')) as SchemaNode;
  requireDefaulted(schema);
  return compile(schema as JSONSchema, typeName, {
    bannerComment: banner,
    additionalProperties: false,
    unreachableDefinitions: false,
    style: { singleQuote: true },
  });
}
