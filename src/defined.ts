/**
 * The properties of `o` whose value is not undefined. With `exactOptionalPropertyTypes`, an
 * optional property may be missing but not `undefined`, so `{ ...defined({ mode, uid }) }` stands
 * for one `...(mode !== undefined ? { mode } : {})` spread per key.
 */
export function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}
