/**
 * YAML 1.1 scalars as Ansible's loader (PyYAML's resolver) reads them, for inventory files only:
 * playbooks stay YAML 1.2. `ansible_become: no` must be false, `mode: 0755` must be 493, and a
 * host key like `010` must be recognised as the integer Ansible refuses, not silently renamed.
 * The patterns follow PyYAML's implicit resolvers (yaml/resolver.py), which differ from the YAML
 * 1.1 spec and from the `yaml` package's 1.1 schema: `y`/`n` stay strings, a float needs a dot
 * and a signed exponent, `yEs` is a string.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, Scalar, type Document } from 'yaml';

const BOOL = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const FLOAT =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const INT =
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
const NULL = /^(?:~|null|Null|NULL|)$/;
const TIMESTAMP =
  /^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$/;

function sexagesimal(body: string): number {
  return body.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

function int(text: string): number {
  let s = text.replace(/_/g, '');
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s.startsWith('0b')) return sign * parseInt(s.slice(2), 2);
  if (s.startsWith('0x')) return sign * parseInt(s.slice(2), 16);
  if (s.startsWith('0')) return sign * parseInt(s, 8);
  if (s.includes(':')) return sign * sexagesimal(s);
  return sign * Number(s);
}

function float(text: string): number {
  let s = text.replace(/_/g, '').toLowerCase();
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '.inf') return sign * Infinity;
  if (s === '.nan') return NaN;
  if (s.includes(':')) return sign * sexagesimal(s);
  return sign * Number(s);
}

/** A plain (unquoted, untagged) scalar's value under PyYAML's YAML 1.1 resolver. */
export function resolvePlain(text: string): unknown {
  if (NULL.test(text)) return null;
  if (BOOL.test(text)) return TRUE.test(text);
  if (INT.test(text)) return int(text);
  if (FLOAT.test(text)) return float(text);
  // A date is printed back by ansible-inventory as ISO text; datetimes keep their text.
  if (TIMESTAMP.test(text)) return text;
  return text;
}

/** The value of a scalar node: plain scalars through the YAML 1.1 resolver, quoted ones as text. */
export function scalarValue(node: Scalar): unknown {
  const source = typeof node.source === 'string' ? node.source : String(node.value ?? '');
  const tag = node.tag;
  if (tag && tag !== '?' && tag !== '!') {
    // Decrypted as the file was parsed (src/vault): the value is the plaintext, not the source.
    if (tag === '!vault') return node.value;
    if (tag.endsWith(':str') || tag === '!unsafe') return source;
    if (tag.endsWith(':int')) return int(source);
    if (tag.endsWith(':float')) return float(source);
    if (tag.endsWith(':bool')) return resolvePlain(source) === true;
    if (tag.endsWith(':null')) return null;
    return source;
  }
  if (node.type === Scalar.PLAIN || node.type === undefined) return resolvePlain(source);
  return source;
}

/** A YAML node as Ansible's loader would give it: YAML 1.1 scalars, merge keys, last duplicate wins. */
export function toAnsibleValue(doc: Document, node: unknown, depth = 0): unknown {
  if (depth > 200) throw new Error('nesting deeper than 200 levels');
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return toAnsibleValue(doc, node.resolve(doc), depth + 1);
  if (isScalar(node)) return scalarValue(node);
  if (isSeq(node)) return node.items.map((i) => toAnsibleValue(doc, i, depth + 1));
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    const merged: Record<string, unknown> = {};
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const keyNode = pair.key;
      if (isScalar(keyNode) && keyNode.type === Scalar.PLAIN && keyNode.source === '<<' && !keyNode.tag) {
        const v = toAnsibleValue(doc, pair.value, depth + 1);
        // Later entries of a merge list lose to earlier ones, and every merged key to the map's own.
        for (const m of (Array.isArray(v) ? v : [v]).reverse())
          if (m && typeof m === 'object' && !Array.isArray(m)) Object.assign(merged, m);
        continue;
      }
      const key = toAnsibleValue(doc, keyNode, depth + 1);
      out[keyText(key)] = toAnsibleValue(doc, pair.value, depth + 1);
    }
    return { ...merged, ...out };
  }
  return null;
}

/** How Python prints a key that is not a string (JSON output turns keys into text the same way). */
export function keyText(key: unknown): string {
  if (key === null) return 'null';
  if (key === true) return 'true';
  if (key === false) return 'false';
  return String(key);
}
