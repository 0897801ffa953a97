/**
 * Credential edits on docker-format config.json files (docker's ~/.docker/config.json, kubelet's
 * /var/lib/kubelet/config.json). Pure: text in, text out. (Masking their secrets is src/secrets'.)
 *
 * The file is parsed and written back with JSON.stringify in the file's own indentation (tab, N
 * spaces, or compact) and final-newline style, so a file written by docker or kubeadm comes back
 * identical except for the removed entries. What cannot survive a parse (duplicate keys, `1.0`
 * written as `1`, `\u00e9` escapes) keeps its meaning, not its bytes.
 */
import { isDeepStrictEqual } from 'node:util';
import { registryKeyMatches } from '../containerd/registry-host.js';
import { refusal, type Result } from '../result.js';

/** The outcome of an edit: new text, whether it differs, and the removed `auths` keys (names only). */
export interface CredentialEdit {
  text: string;
  changed: boolean;
  removed: string[];
}

/** Indentation JSON.stringify should use to reproduce `text`'s style: a tab, a number of spaces, or 0 (compact). */
export function detectIndent(text: string): string | number {
  const m = /\n([ \t]+)\S/.exec(text);
  if (!m?.[1]) return 0;
  return m[1].startsWith('\t') ? '\t' : m[1].length;
}

/** `value` serialised in the style of `original` (indent and trailing newline). */
export function stringifyLike(original: string, value: unknown): string {
  const eol = original.includes('\r\n') ? '\r\n' : '\n';
  // JSON.stringify escapes newlines inside strings, so every raw \n is a line break to convert.
  const body = JSON.stringify(value, null, detectIndent(original)).replace(/\n/g, eol);
  return /\n$/.test(original) ? `${body}${eol}` : body;
}

function parseObject(text: string, label: string): Result<{ doc: Record<string, unknown> }> {
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    return refusal(
      `${label} is not valid JSON (${(e as Error).message}), so trustplay will not edit it: fix or remove it by hand, or leave it out of \`paths\``,
    );
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return refusal(
      `${label} holds JSON but not an object like a docker config.json, so trustplay will not edit it: leave it out of \`paths\``,
    );
  }
  return { ok: true, doc: doc as Record<string, unknown> };
}

/**
 * Removes the `auths` entries naming `registry` (`host`, `host:port`, `https://host`,
 * `https://host/v1/`) from a docker config.json text; every other key stays as it was.
 */
export function removeRegistryCredentials(text: string, registry: string, label = 'the file'): Result<CredentialEdit> {
  const parsed = parseObject(text, label);
  if (!parsed.ok) return parsed;
  const doc = parsed.doc;
  const auths = doc['auths'];
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths))
    return { ok: true, text, changed: false, removed: [] };
  const keep: Record<string, unknown> = {};
  const removed: string[] = [];
  for (const [key, value] of Object.entries(auths)) {
    if (registryKeyMatches(key, registry)) removed.push(key);
    else keep[key] = value;
  }
  if (removed.length === 0) return { ok: true, text, changed: false, removed };
  // Rebuild top-level keys in their order so only `auths` changes.
  const next: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) next[k] = k === 'auths' ? keep : v;
  const out = stringifyLike(text, next);
  // Self-check: what we write must parse back to the same document minus the removed entries.
  const reparsed = JSON.parse(out) as Record<string, unknown>;
  if (!isDeepStrictEqual(reparsed, next)) {
    return refusal(
      `${label} did not survive a JSON round trip unchanged, so trustplay will not edit it: remove the ${removed.join(', ')} entries by hand`,
    );
  }
  return { ok: true, text: out, changed: true, removed };
}

/** Every registry key in a config.json's `auths` (for output of a whole-file removal); [] when unreadable. */
export function credentialKeys(text: string): string[] {
  const parsed = parseObject(text, 'the file');
  if (!parsed.ok) return [];
  const auths = parsed.doc['auths'];
  return typeof auths === 'object' && auths !== null && !Array.isArray(auths) ? Object.keys(auths) : [];
}

/**
 * A credential helper a credential file names: the registry's credentials may live in the helper's
 * store (docker-credential-<helper>: pass, secretservice, ecr-login...) rather than in the file.
 */
export interface HelperRef {
  /** The program's suffix: `pass` for docker-credential-pass. */
  helper: string;
  /**
   * `credHelpers`: named for this registry key; `credsStore`: the default for registries not in
   * credHelpers; `credential-helpers`: containers/image's registries.conf list, asked for every registry.
   */
  via: 'credHelpers' | 'credsStore' | 'credential-helpers';
  /** The registry as the helper stores it: the `credHelpers` key as written; for credsStore, null (any). */
  key: string | null;
}

/** `credHelpers` entries and `credsStore` as written (helper names that are non-empty strings only). */
function helpersOf(doc: Record<string, unknown>): { entries: [string, string][]; store: string | null } {
  const ch = doc['credHelpers'];
  const entries =
    typeof ch === 'object' && ch !== null && !Array.isArray(ch)
      ? Object.entries(ch).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '')
      : [];
  const store = doc['credsStore'];
  return { entries, store: typeof store === 'string' && store !== '' ? store : null };
}

/**
 * The helpers that may hold `registry`'s credentials according to a credential file: its
 * `credHelpers` entries naming it (matched like `auths` keys), else its `credsStore` (Docker asks
 * the store for every registry credHelpers does not name). `credsStore: false` for a
 * containers/image auth.json: containers/image has no credsStore (its global helpers are
 * registries.conf's `credential-helpers`); skopeo 1.9 ignores the key and drops it when it
 * rewrites the file. [] when the file is not a JSON object (the edit refuses it with the reason).
 */
export function helpersFor(text: string, registry: string, opts: { credsStore: boolean }): HelperRef[] {
  const parsed = parseObject(text, 'the file');
  if (!parsed.ok) return [];
  const { entries, store } = helpersOf(parsed.doc);
  const named = entries.filter(([k]) => registryKeyMatches(k, registry));
  if (named.length > 0) return named.map(([key, helper]) => ({ helper, via: 'credHelpers', key }));
  return opts.credsStore && store !== null ? [{ helper: store, via: 'credsStore', key: null }] : [];
}

/** Every helper a credential file names (for a whole-file removal): its credHelpers entries, then credsStore. */
export function allHelpers(text: string, opts: { credsStore: boolean }): HelperRef[] {
  const parsed = parseObject(text, 'the file');
  if (!parsed.ok) return [];
  const { entries, store } = helpersOf(parsed.doc);
  return [
    ...entries.map(([key, helper]): HelperRef => ({ helper, via: 'credHelpers', key })),
    ...(opts.credsStore && store !== null ? [{ helper: store, via: 'credsStore' as const, key: null }] : []),
  ];
}
