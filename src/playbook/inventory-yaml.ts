/**
 * Ansible's YAML inventory (the `yaml` inventory plugin of ansible-core 2.14), read into the
 * inventory model with the same acceptance rules: `hosts`/`children`/`vars` given as a string
 * mean a one-entry mapping, empty sections are skipped, unknown keys are warnings, a host key that
 * YAML 1.1 reads as a number is refused. Every refusal and warning is located.
 */
import { isAlias, isMap, isPair, isScalar, type Node as YamlNode } from 'yaml';
import { at, type Diagnostic, type SourceFile } from './diagnostics.js';
import { expandHostEntry, InventoryModel, InventoryModelError } from './inventory-model.js';
import { keyText, toAnsibleValue } from './inventory-yaml11.js';

interface Entry {
  key: unknown;
  keyNode: unknown;
  valueNode: unknown;
}

/** A variable as the file set it, with where (for the connection-variable checks). */
export interface VarDefinition {
  /** `host NAME` or `group NAME`. */
  owner: string;
  key: string;
  value: unknown;
  where: Diagnostic;
}

export interface ParsedAnsible {
  model?: InventoryModel;
  errors: Diagnostic[];
  warnings: Diagnostic[];
  definitions: VarDefinition[];
  /** Where each host was first named, for later located errors. */
  hostWhere: Map<string, Diagnostic>;
}

/**
 * What both Ansible inventory parsers (YAML and INI) fill in: the model, located problems, variable
 * definitions, and where each host and group was first named (to locate later warnings).
 */
export function parseState() {
  return {
    model: new InventoryModel(),
    errors: [] as Diagnostic[],
    warnings: [] as Diagnostic[],
    definitions: [] as VarDefinition[],
    hostWhere: new Map<string, Diagnostic>(),
    groupWhere: new Map<string, Diagnostic>(),
  };
}

function typeName(v: unknown): string {
  if (v === null) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v} (${String(v)})`;
}

export function parseAnsibleYaml(src: SourceFile): ParsedAnsible {
  const { model, errors, warnings, definitions, hostWhere, groupWhere } = parseState();
  const doc = src.doc;
  const deref = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);
  const value = (n: unknown): unknown => toAnsibleValue(doc, n);
  // Duplicate keys: the last value wins, at the position of the first (as a Python dict fills).
  const entries = (node: unknown): Entry[] => {
    const out = new Map<string, Entry>();
    if (!isMap(node)) return [];
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = value(pair.key);
      const id = `${typeof key}:${keyText(key)}`;
      const prev = out.get(id);
      if (prev) prev.valueNode = pair.value;
      else out.set(id, { key, keyNode: pair.key, valueNode: pair.value });
    }
    return [...out.values()];
  };
  const fail = (node: unknown, message: string): void => {
    errors.push(at(src, node, message));
  };
  const warn = (node: unknown, message: string): void => {
    warnings.push({ ...at(src, node, message), severity: 'warning' });
  };
  /** The value of a group section, as Ansible normalises it: a string `x` means `{x: null}`. */
  const section = (node: unknown): { kind: 'map'; entries: Entry[] } | { kind: 'null' } | { kind: 'other' } => {
    const n = deref(node);
    if (n === null || n === undefined) return { kind: 'null' };
    if (isMap(n)) return { kind: 'map', entries: entries(n) };
    const v = value(n);
    if (v === null) return { kind: 'null' };
    if (typeof v === 'string') return { kind: 'map', entries: [{ key: v, keyNode: n, valueNode: null }] };
    return { kind: 'other' };
  };

  const parseGroup = (name: unknown, keyNode: unknown, node: unknown, depth: number): string | undefined => {
    if (depth > 100) {
      fail(keyNode, 'groups are nested more than 100 levels deep');
      return undefined;
    }
    const n = deref(node);
    const isNull = n === null || n === undefined || (isScalar(n) && value(n) === null);
    if (!isNull && !isMap(n)) {
      warn(
        keyNode,
        `skipping \`${keyText(name)}\`: a group is a mapping with \`hosts\`, \`children\` and \`vars\`, not ${typeName(value(n))}`,
      );
      return typeof name === 'string' ? name : undefined;
    }
    let group: string;
    try {
      group = model.addGroup(name);
      if (!groupWhere.has(group)) groupWhere.set(group, at(src, keyNode, ''));
    } catch (e) {
      fail(keyNode, `${(e as Error).message}`);
      return undefined;
    }
    if (isNull) return group;
    const items = entries(n);
    for (const sec of ['vars', 'children', 'hosts']) {
      const e = items.find((i) => i.key === sec);
      if (e && section(e.valueNode).kind === 'other')
        fail(
          e.valueNode ?? e.keyNode,
          `\`${sec}\` of group \`${group}\` must be a mapping${sec === 'vars' ? ' of variables' : ` of ${sec === 'hosts' ? 'host' : 'group'} names`}, not ${typeName(value(e.valueNode))}`,
        );
    }
    for (const e of items) {
      const key = keyText(e.key);
      const known = key === 'vars' || key === 'children' || key === 'hosts';
      const sec = known ? section(e.valueNode) : undefined;
      if (sec?.kind === 'other') continue;
      if (!known) {
        const v = deref(e.valueNode);
        if (v !== null && v !== undefined && !isMap(v) && value(v) !== null) {
          warn(
            e.keyNode,
            `skipping key \`${key}\` in group \`${group}\`: it is not a mapping (a group has \`hosts\`, \`children\` and \`vars\`)`,
          );
        } else if (isMap(v)) {
          warn(
            e.keyNode,
            `skipping unexpected key \`${key}\` in group \`${group}\`: only \`vars\`, \`children\` and \`hosts\` are valid`,
          );
        }
        continue;
      }
      if (!sec || sec.kind !== 'map') continue;
      if (key === 'vars') {
        for (const v of sec.entries) {
          const vk = keyText(v.key);
          const vv = value(v.valueNode);
          try {
            model.setVariable(group, vk, vv);
          } catch (err) {
            fail(v.valueNode ?? v.keyNode, (err as Error).message);
          }
          definitions.push({
            owner: `group ${group}`,
            key: vk,
            value: vv,
            where: at(src, v.valueNode ?? v.keyNode, ''),
          });
        }
      } else if (key === 'children') {
        for (const c of sec.entries) {
          const child = parseGroup(c.key, c.keyNode, c.valueNode, depth + 1);
          if (child === undefined) continue;
          try {
            model.addChild(group, child);
          } catch (err) {
            fail(c.keyNode, (err as Error).message);
          }
        }
      } else {
        for (const h of sec.entries) addHosts(group, h);
      }
    }
    return group;
  };

  const addHosts = (group: string, h: Entry): void => {
    if (typeof h.key !== 'string') {
      fail(
        h.keyNode,
        `host name \`${keyText(h.key)}\` is read as ${typeName(h.key)} (YAML 1.1, as Ansible reads inventories): put it in quotes`,
      );
      return;
    }
    let expanded: { names: string[]; port?: number };
    try {
      expanded = expandHostEntry(h.key);
    } catch (err) {
      fail(h.keyNode, (err as Error).message);
      return;
    }
    const raw = value(h.valueNode);
    // Python's `x or {}`: any empty or false value means "no variables".
    const vars = raw === null || raw === false || raw === 0 || raw === '' ? {} : raw;
    const isEmptyList = Array.isArray(vars) && vars.length === 0;
    if (!isEmptyList && (typeof vars !== 'object' || Array.isArray(vars))) {
      fail(
        h.valueNode ?? h.keyNode,
        `host \`${h.key}\` in group \`${group}\` must have a mapping of variables (or nothing), not ${typeName(raw)}`,
      );
      return;
    }
    for (const name of expanded.names) {
      try {
        model.addHost(name, group, expanded.port);
      } catch (err) {
        fail(h.keyNode, (err as Error).message);
        continue;
      }
      if (!hostWhere.has(name)) hostWhere.set(name, at(src, h.keyNode, ''));
      if (isEmptyList) continue;
      const varNodes = entries(deref(h.valueNode));
      for (const [k, v] of Object.entries(vars as Record<string, unknown>)) {
        model.setVariable(name, k, v);
        const node = varNodes.find((e) => keyText(e.key) === k);
        definitions.push({
          owner: `host ${name}`,
          key: k,
          value: v,
          where: at(src, (node?.valueNode as YamlNode | null) ?? node?.keyNode ?? h.keyNode, ''),
        });
      }
    }
  };

  const top = deref(doc.contents);
  const data = value(top);
  if (data === null || data === undefined) {
    return {
      errors: [at(src, top, 'inventory is empty: list groups with their `hosts:` (or use the `all:` group)')],
      warnings,
      definitions,
      hostWhere,
    };
  }
  if (!isMap(top)) {
    return {
      errors: [
        at(src, top, `an inventory must be a mapping of groups (e.g. \`all:\` with \`hosts:\`), not ${typeName(data)}`),
      ],
      warnings,
      definitions,
      hostWhere,
    };
  }
  const plugin = entries(top).find((e) => e.key === 'plugin');
  if (plugin && value(plugin.valueNode)) {
    return {
      errors: [
        at(
          src,
          plugin.keyNode,
          'this file configures an Ansible inventory plugin, which trustplay does not run: run `ansible-inventory -i FILE --list -y` and use its output as the inventory',
        ),
      ],
      warnings,
      definitions,
      hostWhere,
    };
  }
  for (const e of entries(top)) parseGroup(e.key, e.keyNode, e.valueNode, 0);
  if (errors.length) return { errors, warnings, definitions, hostWhere };
  try {
    model.reconcile();
  } catch (err) {
    if (!(err instanceof InventoryModelError)) throw err;
    return { errors: [at(src, top, err.message)], warnings, definitions, hostWhere };
  }
  for (const w of model.warnings) {
    const loc = (w.host !== undefined ? hostWhere.get(w.host) : groupWhere.get(w.group!)) ?? at(src, top, '');
    warnings.push({ ...loc, message: w.message, severity: 'warning' });
  }
  return { model, errors, warnings, definitions, hostWhere };
}
