/**
 * Renamed module arguments: the old name stays accepted (playbooks in users' git use it) and is
 * marked in the module's schema with `deprecated: true` and `x-renamed: <new name>`. The loader
 * warns where the old name is written (validate, check and run print it); the engine reads it as
 * the new name.
 */
import { at, nodeAt, type Diagnostic, type SourceFile } from './diagnostics.js';

/** Old argument name → new name, from a module's argument schema. */
export function renamedArgs(schema: Readonly<Record<string, unknown>>): Map<string, string> {
  const out = new Map<string, string>();
  const props = schema['properties'];
  if (!props || typeof props !== 'object') return out;
  for (const [name, p] of Object.entries(props as Record<string, Record<string, unknown>>)) {
    const to = p['x-renamed'];
    if (typeof to === 'string') out.set(name, to);
  }
  return out;
}

/** The arguments with every old name moved to its new one (an explicit new name wins). */
export function withNewNames(
  schema: Readonly<Record<string, unknown>>,
  args: Record<string, unknown>,
): Record<string, unknown> {
  const renamed = renamedArgs(schema);
  if (!renamed.size) return args;
  const out = { ...args };
  for (const [from, to] of renamed) {
    if (!(from in out)) continue;
    if (!(to in out)) out[to] = out[from];
    delete out[from];
  }
  return out;
}

/** A located warning for each old argument name the play's tasks and handlers use. */
export function deprecatedArgWarnings(
  src: SourceFile,
  playPath: (string | number)[],
  play: Record<string, unknown>,
  modules: Record<string, Readonly<Record<string, unknown>>>,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const key of ['tasks', 'handlers'] as const) {
    const list = Array.isArray(play[key]) ? (play[key] as unknown[]) : [];
    list.forEach((t, i) => {
      if (!t || typeof t !== 'object') return;
      for (const [module, args] of Object.entries(t as Record<string, unknown>)) {
        const schema = modules[module];
        if (!schema || !args || typeof args !== 'object') continue;
        for (const [from, to] of renamedArgs(schema)) {
          if (!(from in (args as Record<string, unknown>))) continue;
          const node = nodeAt(src, [...playPath, key, i, module, from], true);
          out.push({
            ...at(src, node, `\`${module}\` argument \`${from}\` is deprecated: call it \`${to}\` (same meaning)`),
            severity: 'warning',
          });
        }
      }
    });
  }
  return out;
}
