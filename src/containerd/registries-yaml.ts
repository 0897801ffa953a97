/**
 * Surgical edits of k3s's and RKE2's `registries.yaml` (`/etc/rancher/{k3s,rke2}/registries.yaml`),
 * the file their agent renders containerd's `certs.d/<host>/hosts.toml` and `config.toml` from at
 * every start (k3s `pkg/agent/containerd/config.go`). Editing the generated files is lost at the
 * next start, so trust and credentials are changed here and the k3s/RKE2 unit restarted.
 *
 * The edit goes through the `yaml` package's Document API: comments, key order, quoting and every
 * other registry's entries stay as they are; only `configs."<registry>".tls` (the keys trustplay
 * manages) or `configs."<registry>".auth` change. A file it cannot edit that way (not YAML, not a
 * mapping, an alias in the way) is refused with one sentence, never rewritten.
 */
import { diffArrays } from 'diff';
import { isMap, isScalar, parseDocument, type Document, type ToStringOptions } from 'yaml';
import type { Result } from '../result.js';

/** The TLS keys of a registries.yaml `configs.<host>.tls` entry (rancher/wharfie's names). */
export interface RegistriesTls {
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
  insecure_skip_verify?: boolean;
}

/** What a registries.yaml holds, for plans and facts (no credential values). */
export interface RegistriesInfo {
  mirrors: Record<string, { endpoint: string[] }>;
  configs: Record<string, { tls?: RegistriesTls; auth: boolean }>;
}

/** An edit's outcome. */
export type RegistriesEdit = Result<{ text: string; changed: boolean; reformatted: boolean }>;

const TLS_KEYS = ['ca_file', 'cert_file', 'key_file', 'insecure_skip_verify'] as const;

function load(text: string | null, file: string): Result<{ doc: Document }> {
  const doc = parseDocument(text ?? '', { keepSourceTokens: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0] ? ` at line ${e.linePos[0].line}:${e.linePos[0].col}` : '';
    return {
      ok: false,
      error: `${file} is not valid YAML${at} (${e.message.split('\n')[0] ?? ''}); k3s would not read it either: fix it by hand, then run again.`,
    };
  }
  if (doc.contents !== null && !isMap(doc.contents))
    return { ok: false, error: `${file} is not a YAML mapping (mirrors:/configs:); fix it by hand, then run again.` };
  for (const key of ['mirrors', 'configs']) {
    const v = doc.get(key, true);
    if (v !== undefined && v !== null && !isMap(v) && !(isScalar(v) && v.value === null))
      return { ok: false, error: `${file}: \`${key}\` is not a mapping; fix it by hand, then run again.` };
  }
  return { ok: true, doc };
}

function plain(v: unknown): unknown {
  return v !== null && typeof v === 'object' && 'toJSON' in v ? (v as { toJSON(): unknown }).toJSON() : v;
}

/** Reads a registries.yaml (null = absent) into what plans and facts need. */
export function inspectRegistries(text: string | null, file: string): Result<{ info: RegistriesInfo }> {
  const r = load(text, file);
  if (!r.ok) return r;
  const js = (r.doc.toJS() ?? {}) as { mirrors?: unknown; configs?: unknown };
  const info: RegistriesInfo = { mirrors: {}, configs: {} };
  const obj = (v: unknown): Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  for (const [host, m] of Object.entries(obj(js.mirrors))) {
    const ep = obj(m)['endpoint'];
    info.mirrors[host] = { endpoint: Array.isArray(ep) ? ep.filter((e): e is string => typeof e === 'string') : [] };
  }
  for (const [host, c] of Object.entries(obj(js.configs))) {
    const t = obj(c)['tls'];
    const tls: RegistriesTls = {};
    if (t !== undefined && t !== null) {
      for (const k of TLS_KEYS) {
        const v = obj(t)[k];
        if (k === 'insecure_skip_verify' ? typeof v === 'boolean' : typeof v === 'string')
          (tls as Record<string, unknown>)[k] = v;
      }
    }
    info.configs[host] = {
      ...(t !== undefined && t !== null ? { tls } : {}),
      auth: obj(c)['auth'] !== undefined && obj(c)['auth'] !== null,
    };
  }
  return { ok: true, info };
}

function sameTls(a: RegistriesTls | undefined, b: RegistriesTls): boolean {
  return TLS_KEYS.every((k) => (a?.[k] ?? undefined) === (b[k] ?? undefined));
}

/**
 * Sets `configs."<registry>".tls` to exactly `tls` (the keys trustplay manages; other keys of that
 * table stay), or with `null` removes those keys, dropping tables left empty. Unchanged text when
 * the file already says so.
 */
export function setRegistriesTls(
  text: string | null,
  file: string,
  registry: string,
  tls: RegistriesTls | null,
): RegistriesEdit {
  const r = inspectRegistries(text, file);
  if (!r.ok) return r;
  const current = r.info.configs[registry]?.tls;
  if (tls === null ? current === undefined || TLS_KEYS.every((k) => current[k] === undefined) : sameTls(current, tls))
    return { ok: true, text: text ?? '', changed: false, reformatted: false };
  const loaded = load(text, file);
  if (!loaded.ok) return loaded;
  const { doc } = loaded;
  const path = ['configs', registry, 'tls'];
  for (const k of TLS_KEYS) {
    const want = tls?.[k];
    if (want === undefined) {
      if (doc.hasIn([...path, k])) doc.deleteIn([...path, k]);
    } else if (plain(doc.getIn([...path, k])) !== want) doc.setIn([...path, k], want);
  }
  if (tls === null) dropEmpty(doc, path);
  return { ok: true, ...render(doc, text), changed: true };
}

/**
 * The mirror endpoint that makes k3s/RKE2 releases before the k3s#9839 fix apply a registry's
 * `configs.<registry>.tls` to pulls from the registry itself. Those releases (with the registries
 * handling of k3s#9556, February 2024, and before the `[host]` stub of k3s#9853, released in
 * v1.29.4, v1.28.9 and v1.27.13; RKE2 alike, rancher/rke2#5658)
 * render the TLS of a registry that has no mirror endpoint of its own only at the top level of
 * its hosts.toml, with no `[host]` table, and containerd 1.6/1.7 (what they ship; the 1.6.20 and
 * 1.7.24 binaries of the lab still parse this way, 2.1.9 does not) rejects that file ("invalid
 * `host` tree", containerd#10027) and pulls without the CA. A mirror endpoint written as `https://<registry>`, `<registry>` or
 * `https://<registry>/v2` does not help: k3s normalises it to the default endpoint and renders it at
 * the top level too. `https://<registry>/v2/` is normalised to a URL of its own (its path is not
 * one of "", "/", "/v2"), so k3s writes it as `[host."https://<registry>/v2/"]` with
 * `override_path = true` and the registry's TLS from `configs`; containerd cleans the path back to
 * `/v2`, so requests go to exactly the registry's own API root. On fixed releases the same entry
 * renders the same host table beside the default endpoint (which carries the TLS too): the same
 * registry, tried once more on a failure, nothing else.
 */
export function selfMirrorEndpoint(registry: string): string {
  return `https://${registry}/v2/`;
}

/**
 * Whether a person's own `mirrors."<registry>"` entry leaves the registry without a host table on
 * releases before the k3s#9839 fix: every endpoint is one k3s folds into the registry's default
 * endpoint (`<registry>`, `https://<registry>`, with path "", "/" or "/v2"), or there is none.
 */
export function mirrorFoldsIntoDefault(info: RegistriesInfo, registry: string): boolean {
  const m = info.mirrors[registry];
  if (m === undefined) return false;
  return m.endpoint.every((e) => {
    const rest = e.replace(/^https:\/\//, '');
    if (rest.includes('://')) return false;
    const slash = rest.indexOf('/');
    const [host, p] = slash < 0 ? [rest, ''] : [rest.slice(0, slash), rest.slice(slash)];
    return host === registry && ['', '/', '/v2'].includes(p);
  });
}

/**
 * Adds `mirrors."<registry>".endpoint: [selfMirrorEndpoint]` when the registry has no `mirrors`
 * entry (a person's own mirror entry is never touched), or with `present: false` removes exactly
 * that entry again (and nothing that differs from it). Unchanged text when there is nothing to do.
 */
export function setRegistriesSelfMirror(
  text: string | null,
  file: string,
  registry: string,
  present: boolean,
): RegistriesEdit {
  const r = inspectRegistries(text, file);
  if (!r.ok) return r;
  const unchanged = { ok: true as const, text: text ?? '', changed: false, reformatted: false };
  const url = selfMirrorEndpoint(registry);
  const loaded = load(text, file);
  if (!loaded.ok) return loaded;
  const { doc } = loaded;
  const mirrors = doc.get('mirrors', true);
  if (present) {
    if (r.info.mirrors[registry] !== undefined) return unchanged;
    if (isMap(mirrors)) doc.setIn(['mirrors', registry, 'endpoint'], [url]);
    else doc.set('mirrors', doc.createNode({ [registry]: { endpoint: [url] } }));
  } else {
    const own = JSON.stringify(plain(doc.getIn(['mirrors', registry]))) === JSON.stringify({ endpoint: [url] });
    if (!own) return unchanged;
    doc.deleteIn(['mirrors', registry]);
    dropEmpty(doc, ['mirrors', registry]);
  }
  return { ok: true, ...render(doc, text), changed: true };
}

/** Removes `configs."<key>".auth` for every key naming `registry` (`host`, `host:port`, `https://host`). */
export function removeRegistriesAuth(
  text: string | null,
  file: string,
  matches: (key: string) => boolean,
): Result<{ text: string; changed: boolean; reformatted: boolean; removed: string[] }> {
  const r = inspectRegistries(text, file);
  if (!r.ok) return r;
  const keys = Object.entries(r.info.configs)
    .filter(([k, c]) => c.auth && matches(k))
    .map(([k]) => k);
  if (keys.length === 0) return { ok: true, text: text ?? '', changed: false, reformatted: false, removed: [] };
  const loaded = load(text, file);
  if (!loaded.ok) return loaded;
  for (const k of keys) {
    loaded.doc.deleteIn(['configs', k, 'auth']);
    dropEmpty(loaded.doc, ['configs', k, 'auth']);
  }
  return {
    ok: true,
    ...render(loaded.doc, text),
    changed: true,
    removed: keys.map((k) => `configs."${k}".auth`),
  };
}

/** Removes the mappings along `path` (deepest first) that an edit left empty. */
function dropEmpty(doc: Document, path: string[]): void {
  for (let i = path.length; i > 0; i--) {
    const at = path.slice(0, i);
    const node = doc.getIn(at, true);
    if (node === undefined) continue;
    if (isMap(node) && node.items.length === 0) doc.deleteIn(at);
    else if (!(isScalar(node) && node.value === null)) return;
  }
}

/** Rendering options that match the original file's own indentation, so inserted lines fit in. */
function styleOf(original: string): ToStringOptions {
  const lines = original.split('\n');
  let indent: number | undefined;
  let indentSeq = true;
  // The first nesting step decides, as it would for a person extending the file.
  for (let i = 0; i + 1 < lines.length; i++) {
    const key = /^( *)[^\s#-][^#]*:\s*(#.*)?$/.exec(lines[i]!);
    const next = /^( *)(- )?\S/.exec(lines[i + 1]!);
    if (!key || !next) continue;
    const step = next[1]!.length - key[1]!.length;
    if (next[2] !== undefined && step === 0) indentSeq = false;
    else if (next[2] === undefined && step > 0) indent ??= step;
  }
  return { lineWidth: 0, indent: indent ?? 2, indentSeq };
}

/**
 * The edited document as text, keeping every untouched byte of `original`: the library's rendering
 * of the unedited file is diffed against its rendering of the edited one, and only the differing
 * lines are spliced into the original. When the library's rendering does not line up with the
 * original (or the splice would not read back as the edited document), the file is re-rendered
 * whole (comments still kept) and `reformatted` says so.
 */
function render(doc: Document, original: string | null): { text: string; reformatted: boolean } {
  const opts = styleOf(original ?? '');
  // An emptied document stays an empty file, not "{}".
  const after =
    isMap(doc.contents) && doc.contents.items.length === 0 && !doc.commentBefore && !doc.comment
      ? ''
      : doc.toString(opts);
  if (original === null || original.trim() === '') return { text: after, reformatted: false };
  const before = parseDocument(original, { keepSourceTokens: true }).toString(opts);
  if (before === original) return { text: after, reformatted: false };
  const orig = original.split('\n');
  if (before.split('\n').length === orig.length) {
    const out: string[] = [];
    let i = 0;
    for (const part of diffArrays(before.split('\n'), after.split('\n'))) {
      if (part.added) out.push(...part.value);
      else if (part.removed) i += part.value.length;
      else {
        out.push(...orig.slice(i, i + part.value.length));
        i += part.value.length;
      }
    }
    const text = out.join('\n');
    const back = parseDocument(text);
    if (back.errors.length === 0 && JSON.stringify(back.toJS()) === JSON.stringify(doc.toJS()))
      return { text, reformatted: false };
  }
  return { text: after, reformatted: true };
}
