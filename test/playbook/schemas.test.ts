import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderSchemas } from '../../src/playbook/schema/render.js';
import { renderValidators } from '../../scripts/validators-source.js';
import { renderModuleSchemas } from '../../scripts/module-schemas-source.js';
import { modules } from '../../src/modules/index.js';
import { MODULE_SCHEMAS } from '../../src/playbook/schema/module-schemas.generated.js';
import type { ContainerdTlsArgs } from '../../src/modules/containerd-tls.js';
import { moduleArgSchemas } from '../../src/playbook/schema/modules.js';

const read = (f: string) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');

describe('committed JSON Schemas', () => {
  it('are in step with the TypeScript sources (run `npm run schemas` after editing them)', () => {
    for (const [file, text] of Object.entries(renderSchemas())) expect(read(`schemas/${file}`), file).toBe(text);
  });

  it("the loader's copy of the module schemas is the modules' own (run `npm run schemas` after editing them)", () => {
    expect(read('src/playbook/schema/module-schemas.generated.ts')).toBe(renderModuleSchemas());
    expect(MODULE_SCHEMAS).toEqual(
      modules.map((m) => ({ name: m.name, internal: m.internal === true, schema: m.schema })),
    );
  });

  it('precompiled validators are in step with the schemas (run `npm run schemas` after editing them)', () => {
    expect(read('src/playbook/schema/validators.generated.ts')).toBe(renderValidators('loader'));
    expect(read('src/playbook/schema/validators-defaults.generated.ts')).toBe(renderValidators('defaults'));
  });

  it('are valid JSON Schema 2020-12 that ajv compiles, and agree with the loader on the shipped playbook', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const pb = ajv.compile(JSON.parse(read('schemas/playbook.schema.json')));
    const inv = ajv.compile(JSON.parse(read('schemas/inventory.schema.json')));
    expect(pb(parse(read('playbooks/fix-registry.yaml'))), JSON.stringify(pb.errors)).toBe(true);
    expect(inv(parse(read('inventory.example.yaml'))), JSON.stringify(inv.errors)).toBe(true);
    // Editors see the same rules: two modules in a task, an exclusive pair, a missing key pair.
    expect(pb([{ hosts: 'a', tasks: [{ 'image.rmi': { image: 'x' }, 'image.pull.verify': { image: 'x' } }] }])).toBe(
      false,
    );
    expect(pb([{ hosts: 'a', tasks: [{ 'containerd.tls': { registry: 'r', ca: 'x', plain_http: true } }] }])).toBe(
      false,
    );
    expect(pb([{ hosts: 'a', tasks: [{ 'containerd.tls': { registry: 'r', client_cert: 'x' } }] }])).toBe(false);
    expect(
      pb([
        { hosts: 'a', tasks: [{ 'containerd.tls': { registry: 'r', ca: 'x', client_cert: 'c', client_key: 'k' } }] },
      ]),
    ).toBe(true);
  });

  it('describe every module argument (for editor completion)', () => {
    for (const [name, schema] of Object.entries(moduleArgSchemas)) {
      expect(schema.description.length, name).toBeGreaterThan(20);
      for (const [arg, def] of Object.entries(schema.properties))
        expect((def as { description?: string }).description, `${name}.${arg}`).toBeTruthy();
    }
  });

  it('derive the argument types (defaults are required in the derived type)', () => {
    const args: ContainerdTlsArgs = {
      registry: 'registry.test:5443',
      style: 'hosts',
      migrate_legacy: false,
      verify_ca: 'auto',
      config_path: '/etc/containerd/certs.d',
      config_file: '/etc/containerd/config.toml',
      restart_command: 'systemctl restart containerd',
      restart_timeout: 60,
      state: 'present',
    };
    // @ts-expect-error an enum value outside the schema is a type error
    const bad: ContainerdTlsArgs['style'] = 'legacyy';
    expect([args.style, bad]).toEqual(['hosts', 'legacyy']);
  });
});
