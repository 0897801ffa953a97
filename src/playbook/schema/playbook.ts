/**
 * The playbook and inventory schemas, built from the module argument schemas. `schemas/*.json`
 * are generated from here (`npm run schemas`); a test keeps the committed files in step.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { moduleArgSchemas } from './modules.js';

const stringOrList = {
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
} as const;

/** Keys every task may carry besides its one module key. */
export const taskCommonProperties = {
  name: { type: 'string', description: 'What the task does, shown in the output.' },
  when: {
    anyOf: [
      { type: 'string' },
      { type: 'boolean' },
      { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'boolean' }] } },
    ],
    description:
      'Run the task only when this expression is true: `var`, `not var`, `a == "x"`, `a != b`, `x in list`, `a is defined`, joined with `and` / `or`. A list means all of them.',
  },
  tags: { ...stringOrList, description: 'Tags for `--tags` / `--skip-tags`.' },
  notify: {
    ...stringOrList,
    description: 'Handler name(s) to run at the end of the play when this task changed something.',
  },
  check_mode: {
    type: 'boolean',
    description: 'true: always run this task in check mode (plan only); false: apply it even under --check.',
  },
  ignore_errors: { type: 'boolean', description: 'A failure of this task does not fail the host.' },
  run_once: { type: 'boolean', description: 'Run on the first host of the batch only.' },
} as const;

export const taskCommonKeys = Object.keys(taskCommonProperties);

type ExclusiveCarrier = {
  'x-exclusive'?: readonly (readonly string[])[];
  'x-together'?: readonly (readonly string[])[];
};

const TEMPLATE_STRING = { type: 'string', pattern: '\\{\\{[^{}]*\\}\\}' } as const;

/**
 * A scalar argument may be written as a `{{ var }}` template, checked after interpolation by the
 * loader; the editor schema accepts the template text too instead of flagging it.
 */
function allowTemplate(prop: Record<string, unknown>): Record<string, unknown> {
  if (prop['type'] === 'object' || prop['type'] === 'array' || !('type' in prop || 'anyOf' in prop)) return prop;
  const { description, default: dflt, examples, ...rest } = prop;
  return {
    ...(description !== undefined ? { description } : {}),
    ...(dflt !== undefined ? { default: dflt } : {}),
    ...(examples !== undefined ? { examples } : {}),
    anyOf: [rest, TEMPLATE_STRING],
  };
}

/** Mirror `x-exclusive` / `x-together` as standard JSON Schema so editors flag them too. */
function withStandardConstraints(schema: Record<string, unknown> & ExclusiveCarrier): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties' && v && typeof v === 'object') {
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, Record<string, unknown>>).map(([pk, pv]) => [
          pk,
          allowTemplate(withStandardConstraints(pv)),
        ]),
      );
    } else out[k] = v;
  }
  const all: Record<string, unknown>[] = [];
  for (const group of schema['x-exclusive'] ?? []) {
    const pairs: string[][] = [];
    for (let i = 0; i < group.length; i++)
      for (let j = i + 1; j < group.length; j++) pairs.push([group[i]!, group[j]!]);
    all.push({ not: { anyOf: pairs.map((p) => ({ required: p })) } });
  }
  for (const group of schema['x-together'] ?? []) {
    const dep: Record<string, string[]> = {};
    for (const k of group) dep[k] = group.filter((o) => o !== k);
    out['dependentRequired'] = dep;
  }
  if (all.length) out['allOf'] = all;
  return out;
}

const taskProperties: Record<string, unknown> = { ...taskCommonProperties };
for (const [name, schema] of Object.entries(moduleArgSchemas)) {
  taskProperties[name] = withStandardConstraints(schema);
}

const playKeys = {
  name: { type: 'string', description: 'What the play does.' },
  hosts: {
    type: 'string',
    minLength: 1,
    description:
      'Host pattern: names, groups, `all`, globs (`worker*`), union `a:b`, exclusion `a:!b`, intersection `a:&b`.',
  },
  vars: { type: 'object', description: 'Variables for this play (override inventory variables).' },
  serial: {
    description: 'Run hosts in batches: a number, a percentage (`"30%"`), or a list of them for growing batches.',
    anyOf: [
      { type: 'integer', minimum: 1 },
      { type: 'string', pattern: '^[0-9]+%$' },
      {
        type: 'array',
        minItems: 1,
        items: {
          anyOf: [
            { type: 'integer', minimum: 1 },
            { type: 'string', pattern: '^[0-9]+%$' },
          ],
        },
      },
    ],
  },
  max_fail_percentage: {
    type: 'number',
    minimum: 0,
    maximum: 100,
    description: "Stop the play when more than this percentage of the batch's hosts failed.",
  },
  tasks: { type: 'array', items: { $ref: '#/$defs/task' }, description: 'Tasks, run in order on each host.' },
  handlers: {
    type: 'array',
    items: { $ref: '#/$defs/task' },
    description: "Tasks run once per host after the play's tasks, only when notified by name.",
  },
} as const;

/** The composite playbook schema (what editors and `schemas/playbook.schema.json` see). */
export function buildPlaybookSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://trustplay.dev/schemas/playbook.schema.json',
    title: 'trustplay playbook',
    description: 'One play or a list of plays. Each play runs its tasks in order on the hosts it names.',
    anyOf: [{ $ref: '#/$defs/play' }, { type: 'array', items: { $ref: '#/$defs/play' }, minItems: 1 }],
    $defs: {
      play: {
        type: 'object',
        additionalProperties: false,
        required: ['hosts'],
        properties: playKeys,
      },
      task: {
        type: 'object',
        additionalProperties: false,
        description: 'A task: an optional name, exactly one module key with its arguments, and common keys.',
        properties: taskProperties,
        oneOf: Object.keys(moduleArgSchemas).map((m) => ({ required: [m] })),
      },
    },
  };
}

/** The play schema without task details, for located structural validation. */
export const playShapeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['hosts'],
  properties: {
    ...playKeys,
    tasks: { type: 'array', items: { type: 'object' } },
    handlers: { type: 'array', items: { type: 'object' } },
  },
} as const;

export const taskCommonSchema = {
  type: 'object',
  properties: taskCommonProperties,
} as const;

const hostVarsLike = { type: 'object', description: 'Variables for this host or group.' } as const;

// The NAME of a variable, never the password: an inventory is a file that gets copied around.
const becomePasswordEnv = {
  type: 'string',
  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
  description:
    'Name of the environment variable holding the sudo password for `become` (the password itself never goes in the inventory).',
} as const;

/** trustplay's own inventory format. */
export const inventorySchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://trustplay.dev/schemas/inventory.schema.json',
  title: 'trustplay inventory',
  description:
    "trustplay's inventory: hosts, groups (with `hosts`, `children`, `vars`) and connection defaults. Ansible's YAML inventory shape (`all:` / `children:` / `ansible_host`) is also accepted.",
  type: 'object',
  additionalProperties: false,
  properties: {
    vars: { ...hostVarsLike, description: 'Variables for every host (the lowest precedence).' },
    ssh: {
      type: 'object',
      additionalProperties: false,
      description: 'SSH defaults for every host.',
      properties: {
        known_hosts: {
          ...stringOrList,
          description: 'known_hosts file(s) to verify host keys against (default ~/.ssh/known_hosts).',
        },
        accept_new_host_keys: {
          type: 'boolean',
          description: 'Record unknown host keys (trust on first use); a changed key is still refused.',
        },
        connect_timeout: { type: 'integer', minimum: 1, description: 'Seconds to wait for a connection.' },
        user: { type: 'string', minLength: 1, description: 'Default login user.' },
        identity_file: { type: 'string', minLength: 1, description: 'Default private key file.' },
        become_password_env: {
          ...becomePasswordEnv,
          description:
            'Default `become_password_env` for every host: the name of the environment variable holding the sudo password.',
        },
      },
    },
    hosts: {
      type: 'object',
      description: 'Hosts by name.',
      additionalProperties: {
        anyOf: [
          { type: 'null' },
          {
            type: 'object',
            additionalProperties: false,
            properties: {
              address: {
                type: 'string',
                minLength: 1,
                description: 'IP or DNS name to connect to (default: the host name).',
              },
              port: { type: 'integer', minimum: 1, maximum: 65535, description: 'SSH port (default 22).' },
              user: { type: 'string', minLength: 1, description: 'SSH login user.' },
              identity_file: { type: 'string', minLength: 1, description: 'Private key file (ed25519, ecdsa or rsa).' },
              identity_passphrase_env: {
                type: 'string',
                minLength: 1,
                description: 'Name of the environment variable holding the key passphrase.',
              },
              connection: {
                type: 'string',
                enum: ['ssh', 'local'],
                description: '`ssh` (default) or `local` (run on this machine).',
              },
              become: { type: 'boolean', description: 'Run commands through sudo.' },
              become_password_env: becomePasswordEnv,
              proxy_jump: {
                ...stringOrList,
                description: 'Bastion(s) to jump through: inventory host names or `user@host:port`.',
              },
              cri_socket: { type: 'string', minLength: 1, description: "containerd's CRI socket on this host." },
              vars: hostVarsLike,
            },
          },
        ],
      },
    },
    groups: {
      type: 'object',
      description: 'Groups by name.',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          hosts: { type: 'array', items: { type: 'string' }, description: 'Member host names.' },
          children: { type: 'array', items: { type: 'string' }, description: 'Member groups.' },
          vars: hostVarsLike,
        },
      },
    },
  },
} as const;

export type InventoryDocument = FromSchema<typeof inventorySchema>;
export type PlayShape = FromSchema<typeof playShapeSchema>;
