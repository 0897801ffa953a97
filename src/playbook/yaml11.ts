/**
 * Playbooks are YAML 1.2, where only `true`/`false` are booleans; Ansible's loader (YAML 1.1) also
 * reads `yes`/`no`/`on`/`off`. Someone coming from Ansible writes `flag: no` and gets the string
 * "no", which a condition tests as true. Where such a word lands in a place that is read as a
 * boolean, validation warns (DECISIONS.md, "Inventories").
 */
import { isScalar } from 'yaml';
import { parseWhen, truthTestedVariables } from '../engine/when.js';
import { atInScalar, nodeAt, type Diagnostic, type SourceFile } from './diagnostics.js';

const YAML11_BOOL = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;
const TRUE_WORDS = /^(y|yes|on)$/i;

/** Whether a string is a YAML 1.1 boolean word (a boolean in Ansible, a string here). */
export function isYaml11Bool(v: unknown): v is string {
  return typeof v === 'string' && YAML11_BOOL.test(v);
}

/** The YAML 1.2 spelling of a YAML 1.1 boolean word. */
export function yaml12Bool(word: string): 'true' | 'false' {
  return TRUE_WORDS.test(word) ? 'true' : 'false';
}

/** A note to append to "must be true or false, not the string …" when the string is such a word. */
export function yaml11Hint(v: unknown): string {
  return isYaml11Bool(v) ? `; playbooks are YAML 1.2, where \`${v}\` is a string: write ${yaml12Bool(v)}` : '';
}

function warning(d: Diagnostic): Diagnostic {
  return { ...d, severity: 'warning' };
}

/**
 * Warnings for one play: a `when:` that is itself such a word, and a play variable (or -e value)
 * holding such a word that a condition of the play tests for truth.
 */
export function yaml11Warnings(
  src: SourceFile,
  playPath: (string | number)[],
  play: Record<string, unknown>,
  extraVars: Record<string, unknown>,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const tested = new Map<string, string>();
  for (const key of ['tasks', 'handlers'] as const) {
    const list = Array.isArray(play[key]) ? (play[key] as unknown[]) : [];
    list.forEach((t, i) => {
      if (!t || typeof t !== 'object') return;
      const when = (t as Record<string, unknown>)['when'];
      const conds = Array.isArray(when) ? when.map((c, j) => [c, [j]] as const) : [[when, []] as const];
      for (const [cond, sub] of conds) {
        if (typeof cond !== 'string') continue;
        const node = nodeAt(src, [...playPath, key, i, 'when', ...sub]);
        if (isYaml11Bool(cond) && isScalar(node) && node.type === 'PLAIN') {
          out.push(
            warning(
              atInScalar(
                src,
                node,
                0,
                `\`when: ${cond}\` is not a boolean: playbooks are YAML 1.2, where \`${cond}\` is a string (here the variable \`${cond}\`): write \`when: ${yaml12Bool(cond)}\``,
              ),
            ),
          );
          continue;
        }
        try {
          for (const v of truthTestedVariables(parseWhen(cond))) if (!tested.has(v.name)) tested.set(v.name, cond);
        } catch {
          // A malformed condition is reported as an error by the loader.
        }
      }
    });
  }
  const vars = play['vars'] && typeof play['vars'] === 'object' ? (play['vars'] as Record<string, unknown>) : {};
  // Only the false words mislead: "yes" as a string tests true, as the writer meant.
  const falseWord = (v: unknown): v is string => isYaml11Bool(v) && yaml12Bool(v) === 'false';
  for (const [name, cond] of tested) {
    if (name in extraVars) {
      const v = extraVars[name];
      if (falseWord(v))
        out.push(
          warning({
            file: '-e',
            line: 0,
            col: 0,
            message: `\`${name}=${v}\` is the string "${v}", which \`when: ${cond}\` tests as true: -e values are YAML 1.2, write ${name}=${yaml12Bool(v)}`,
          }),
        );
      continue;
    }
    const v = vars[name];
    const node = nodeAt(src, [...playPath, 'vars', name]);
    if (falseWord(v) && isScalar(node) && node.type === 'PLAIN')
      out.push(
        warning(
          atInScalar(
            src,
            node,
            0,
            `\`${name}: ${v}\` is the string "${v}", which \`when: ${cond}\` tests as true: playbooks are YAML 1.2, where only true/false are booleans; write \`${name}: ${yaml12Bool(v)}\``,
          ),
        ),
      );
  }
  return out;
}
