/**
 * The one ajv configuration trustplay uses, in two modes: `loader` (verbose errors for located
 * messages) and `defaults` (the engine's run-time checks, which also fill in schema defaults). Our
 * own schemas are precompiled at build time in both modes (scripts/validators-source.ts); ajv
 * itself is loaded only for schemas added at run time (internal or test modules).
 */
import { createRequire } from 'node:module';
import type { Ajv2020, Options, ValidateFunction } from 'ajv/dist/2020.js';
import { precompiledSchemas } from './precompiled-names.js';

export type AjvMode = 'loader' | 'defaults';

const MODES: Record<AjvMode, Options> = { loader: { verbose: true }, defaults: { useDefaults: true } };

/** A new ajv for a mode. Loaded on demand (~30 ms) since most runs need only precompiled code. */
export function newAjv(mode: AjvMode, extra: Options = {}): Ajv2020 {
  const { Ajv2020 } = createRequire(import.meta.url)('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  // Our schemas are checked against the 2020-12 meta-schema by the tests (schemas.test.ts);
  // compiling the meta-schema at every start would cost ~50 ms.
  const ajv = new Ajv2020({
    allErrors: true,
    strict: true,
    validateSchema: false,
    meta: false,
    ...MODES[mode],
    ...extra,
  });
  // Annotations read by our own checks (exclusive/together argument groups) and by editors.
  ajv.addKeyword({ keyword: 'x-exclusive', schemaType: 'array' });
  ajv.addKeyword({ keyword: 'x-together', schemaType: 'array' });
  // A secret argument (src/secrets/ masks it; messages never echo its value).
  ajv.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });
  // A file path argument: read on the controller (checked at validation, relative paths resolved
  // against the file that names them), or on the target host (checked when that host is local).
  ajv.addKeyword({ keyword: 'x-file', schemaType: 'string' });
  // An argument's old name, still accepted with a warning (src/playbook/deprecated-args.ts).
  ajv.addKeyword({ keyword: 'x-renamed', schemaType: 'string' });
  return ajv;
}

/**
 * Validator lookup for a mode: the precompiled function for our own schemas, else compiled now
 * (once). Our schemas are found by identity, or by content: the loader holds the generated copies
 * of the module schemas (module-schemas.generated.ts), the engine the modules' own objects.
 */
export function validatorsFor(
  mode: AjvMode,
  generated: Record<string, unknown>,
): (schema: Record<string, unknown>) => ValidateFunction {
  let ajv: Ajv2020 | undefined;
  let cache: Map<Record<string, unknown>, ValidateFunction> | undefined;
  let byText: Map<string, ValidateFunction> | undefined;
  return (schema) => {
    if (!cache) {
      cache = new Map();
      byText = new Map();
      for (const [name, s] of Object.entries(precompiledSchemas())) {
        const fn = generated[name];
        if (typeof fn !== 'function') continue;
        cache.set(s, fn as ValidateFunction);
        byText.set(JSON.stringify(s), fn as ValidateFunction);
      }
    }
    let v = cache.get(schema) ?? byText!.get(JSON.stringify(schema));
    if (!v) v = (ajv ??= newAjv(mode)).compile(schema);
    cache.set(schema, v);
    return v;
  };
}
