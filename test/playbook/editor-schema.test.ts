/**
 * The published JSON Schemas as an editor uses them: the real yaml-language-server (the engine
 * behind the YAML extensions of VS Code, Neovim, Helix, ...) reads `schemas/*.json` and validates
 * and completes documents. Each message an editor shows for a mistake must say what `trustplay
 * validate` says for it, and completion must offer only keys the user can write there.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getLanguageService, type CompletionItem } from 'yaml-language-server';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { parsePlaybook } from '../../src/playbook/playbook.js';
import { parseInventory } from '../../src/playbook/inventory.js';

const read = (f: string) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');
const SCHEMAS: Record<string, string> = {
  'file:///schemas/playbook.schema.json': read('schemas/playbook.schema.json'),
  'file:///schemas/inventory.schema.json': read('schemas/inventory.schema.json'),
};

const ls = getLanguageService({
  // Only the committed files: the language server never reaches a network.
  schemaRequestService: (uri) => {
    const text = SCHEMAS[uri];
    return text === undefined ? Promise.reject(new Error(`no schema ${uri}`)) : Promise.resolve(text);
  },
  workspaceContext: { resolveRelativePath: (p, resource) => new URL(p, resource).toString() },
});
ls.configure({
  validate: true,
  completion: true,
  schemas: [
    { uri: 'file:///schemas/playbook.schema.json', fileMatch: ['/playbooks/*.yaml'] },
    { uri: 'file:///schemas/inventory.schema.json', fileMatch: ['/inventories/*.yaml'] },
  ],
});

// The language server caches a parsed document by URI and version: every text gets its own URI.
let seq = 0;
function doc(kind: 'playbooks' | 'inventories', text: string): TextDocument {
  return TextDocument.create(`file:///${kind}/doc${++seq}.yaml`, 'yaml', 1, text);
}

interface EditorProblem {
  line: number;
  col: number;
  message: string;
}

async function editorProblems(kind: 'playbooks' | 'inventories', text: string): Promise<EditorProblem[]> {
  const ds = await ls.doValidation(doc(kind, text), false);
  return ds.map((d) => ({ line: d.range.start.line + 1, col: d.range.start.character + 1, message: d.message }));
}

async function completions(text: string, line: number, col: number): Promise<CompletionItem[]> {
  const d = doc('playbooks', text);
  return (await ls.doComplete(d, { line: line - 1, character: col - 1 }, false)).items;
}

/** validate's messages for a playbook (the inventory has the hosts the cases name). */
function validateMessages(text: string): string[] {
  const inv = parseInventory('inventory.yaml', 'hosts:\n  node1:\n  node2:\n');
  const r = parsePlaybook('/playbooks/case.yaml', text, { inventory: inv.inventory! });
  // validate names the offending value and the task where an editor cannot: compare the rest.
  return r.errors.map((e) => e.message.replace(/ \(the [^)]*\)/, '').replace(/^task "[^"]*"/, 'task'));
}

const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';

describe('the playbook schema in a real editor engine (yaml-language-server)', () => {
  const cases: Array<{ name: string; text: string; line: number; col: number }> = [
    {
      name: 'two modules in one task',
      text: `- hosts: all\n  tasks:\n    - containerd.tls: { registry: r.example:5000, skip_verify: true }\n      image.rmi: { image: r.example:5000/a:1 }\n`,
      line: 4,
      col: 7,
    },
    {
      name: '`ca` together with `skip_verify`',
      text: `- hosts: all\n  tasks:\n    - containerd.tls:\n        registry: r.example:5000\n        ca: ${JSON.stringify(CA)}\n        skip_verify: true\n`,
      line: 6,
      col: 22,
    },
    {
      name: 'a task with no module',
      text: `- hosts: all\n  tasks:\n    - name: nothing\n      tags: [x]\n`,
      line: 3,
      col: 7,
    },
    {
      name: '`serial: "30 %"` (a space inside the percentage)',
      text: `- hosts: all\n  serial: "30 %"\n  tasks: []\n`,
      line: 2,
      col: 11,
    },
    {
      name: 'a client certificate without its key',
      text: `- hosts: all\n  tasks:\n    - containerd.tls: { registry: r.example:5000, client_cert: ${JSON.stringify(CA)} }\n`,
      line: 3,
      col: 7,
    },
    {
      name: 'a module without its required argument',
      text: `- hosts: all\n  tasks:\n    - k8s.sa.clear: { service_account: default }\n`,
      line: 3,
      col: 7,
    },
    {
      name: 'a play without hosts',
      text: `- tasks: []\n`,
      line: 1,
      col: 3,
    },
  ];
  for (const c of cases)
    it(`${c.name}: the editor says what validate says, where it says it`, async () => {
      const problems = await editorProblems('playbooks', c.text);
      expect(problems).toHaveLength(1);
      const [p] = problems;
      expect({ line: p!.line, col: p!.col }).toEqual({ line: c.line, col: c.col });
      // None of the engine's own words, which name no key and no fix.
      expect(p!.message).not.toMatch(/Matches|not allowed|Missing property|Incorrect type/);
      const said = p!.message.replace(/\.$/, '');
      const validate = validateMessages(c.text);
      expect(
        validate.some((m) => m.replace(/\.$/, '').endsWith(said)),
        `${said}\nnot among validate's:\n${validate.join('\n')}`,
      ).toBe(true);
    });

  it('accepts what validate accepts: the shipped playbook, `serial` lists, an exclusive key set to false', async () => {
    expect(await editorProblems('playbooks', read('playbooks/fix-registry.yaml'))).toEqual([]);
    expect(
      await editorProblems(
        'playbooks',
        `- hosts: all\n  serial: [1, "30%", 5]\n  tasks:\n    - containerd.tls: { registry: r.example:5000, ca: x.pem, skip_verify: false }\n`,
      ),
    ).toEqual([]);
  });

  it('completes a module with its arguments only, and a play with its keys only', async () => {
    const args = await completions(`- hosts: all\n  tasks:\n    - k8s.sa.clear:\n        \n`, 4, 9);
    expect(args.map((i) => i.label).sort()).toEqual(
      ['context', 'kubeconfig', 'kubectl', 'namespace', 'secrets', 'service_account'].sort(),
    );
    const play = await completions(`- hosts: all\n  \n`, 2, 3);
    expect(play.map((i) => i.label).sort()).toEqual(
      ['handlers', 'max_fail_percentage', 'name', 'serial', 'tasks', 'vars', 'vars_files'].sort(),
    );
    const task = await completions(`- hosts: all\n  tasks:\n    - name: x\n      \n`, 4, 7);
    expect(task.map((i) => i.label)).toEqual(
      expect.arrayContaining([
        'when',
        'tags',
        'notify',
        'containerd.tls',
        'k8s.sa.clear',
        'image.pull.verify',
        'import_tasks',
      ]),
    );
    expect(task.map((i) => i.label)).not.toContain('namespace');
  });
});

describe('the inventory schema in a real editor engine (yaml-language-server)', () => {
  it('accepts the shipped example inventory', async () => {
    expect(await editorProblems('inventories', read('inventory.example.yaml'))).toEqual([]);
  });

  it('flags what the loader refuses, at the same key', async () => {
    const text = `hosts:\n  node1:\n    port: "2222"\n    adress: 10.0.0.1\n`;
    const problems = await editorProblems('inventories', text);
    const loader = parseInventory('/inventories/x.yaml', text).errors;
    expect(loader.length).toBeGreaterThan(0);
    expect(problems.map((p) => p.line).sort()).toEqual(loader.map((e) => e.line).sort());
  });
});
