/**
 * The playbook and inventory schemas, built from the module argument schemas. `schemas/*.json`
 * are generated from here (`npm run schemas`); a test keeps the committed files in step.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { moduleArgSchemas } from './modules.js';
import { defined } from '../../defined.js';

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
    ...defined({ description, default: dflt, examples }),
    anyOf: [rest, TEMPLATE_STRING],
  };
}

/**
 * `required` kept out of the object's own keywords: an editor offers an object with required
 * properties a "skeleton" completion item labelled with the object's title (`k8s.sa.clear` among
 * its own arguments, `play` among the play keys); inside `allOf` it is checked the same way.
 */
function requiredOnly(context: string, required: readonly string[]): Record<string, unknown>[] {
  return required.map((r) => ({ required: [r], errorMessage: `${context}: missing required argument \`${r}\`` }));
}

const code = (k: string) => `\`${k}\``;

/**
 * Mirror `x-exclusive` / `x-together` as standard JSON Schema so editors flag them too, each with
 * the sentence `trustplay validate` gives. `errorMessage` is the yaml-language-server's own keyword:
 * without it an editor says "Matches a schema that is not allowed" for an exclusive pair. Only a
 * pair's first member carries the rule, so one problem is one message, at the second member (where
 * validate points); a member set to `false` is absent, as validate counts it.
 */
function withStandardConstraints(
  schema: Record<string, unknown> & ExclusiveCarrier,
  context: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'required') continue;
    if (k === 'properties' && v && typeof v === 'object') {
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, Record<string, unknown>>).map(([pk, pv]) => [
          pk,
          allowTemplate(withStandardConstraints(pv, context)),
        ]),
      );
    } else out[k] = v;
  }
  const dependent: Record<string, Record<string, unknown>[]> = {};
  for (const group of schema['x-exclusive'] ?? [])
    group.forEach((a, i) => {
      for (const b of group.slice(i + 1))
        (dependent[a] ??= []).push({
          if: { properties: { [a]: { const: false } } },
          else: {
            properties: {
              [b]: {
                const: false,
                errorMessage: `${context}: ${code(a)} and ${code(b)} are mutually exclusive: choose one of ${group.map(code).join(', ')}`,
              },
            },
          },
        });
    });
  for (const group of schema['x-together'] ?? [])
    for (const k of group) {
      const missing = group.filter((o) => o !== k);
      (dependent[k] ??= []).push({
        required: missing,
        errorMessage: `${context}: ${code(k)} requires ${missing.map(code).join(', ')}: give both`,
      });
    }
  if (Array.isArray(schema['required']) && schema['required'].length)
    out['allOf'] = requiredOnly(context, schema['required'] as string[]);
  if (Object.keys(dependent).length)
    out['dependentSchemas'] = Object.fromEntries(
      Object.entries(dependent).map(([k, list]) => [k, list.length === 1 ? list[0]! : { allOf: list }]),
    );
  return out;
}

const taskProperties: Record<string, unknown> = { ...taskCommonProperties };
for (const [name, schema] of Object.entries(moduleArgSchemas)) {
  taskProperties[name] = withStandardConstraints(schema, name);
}

const moduleNames = Object.keys(moduleArgSchemas);

/**
 * "Exactly one module" as an editor can word it: a task with none fails every alternative of the
 * `anyOf` with validate's sentence, and a second module is refused by the first one's
 * `dependentSchemas` (a `oneOf` would only say "Matches multiple schemas").
 */
const taskModuleRules = {
  anyOf: [...moduleNames, 'import_tasks'].map((m) => ({
    required: [m],
    errorMessage: `task names no module: add exactly one of ${moduleNames.join(', ')}`,
  })),
  dependentSchemas: Object.fromEntries(
    moduleNames.slice(0, -1).map((m, i) => [
      m,
      {
        allOf: moduleNames.slice(i + 1).map((other) => ({
          properties: { [other]: false },
          errorMessage: `task names two modules (${code(m)}, ${code(other)}): a task runs exactly one; split it into two tasks`,
        })),
      },
    ]),
  ),
};

const percent = { type: 'string', pattern: '^[0-9]+%$' } as const;

const playKeys = {
  name: { type: 'string', description: 'What the play does.' },
  hosts: {
    type: 'string',
    minLength: 1,
    description:
      'Host pattern: names, groups, `all`, globs (`worker*`), union `a:b`, exclusion `a:!b`, intersection `a:&b`.',
  },
  vars: { type: 'object', description: 'Variables for this play (override inventory variables).' },
  vars_files: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    description:
      "Variable files for this play, relative to the playbook (they override the play's `vars:`); a name may use the play's vars and -e values.",
  },
  serial: {
    description: 'Run hosts in batches: a number, a percentage (`"30%"`), or a list of them for growing batches.',
    anyOf: [
      { type: 'integer', minimum: 1 },
      percent,
      {
        type: 'array',
        minItems: 1,
        items: { anyOf: [{ type: 'integer', minimum: 1 }, percent] },
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

/**
 * `serial` for editors: one schema whose keywords each apply to one type (`minimum` to numbers,
 * `pattern` to strings, `items` to lists), so a wrong value gets validate's sentence; as an `anyOf`
 * an editor reports `"30 %"` as `Expected "integer | array"`.
 */
function editorSerial(): Record<string, unknown> {
  const message = `${code('serial')} has the wrong shape: ${playKeys.serial.description}`;
  const one = { minimum: 1, pattern: percent.pattern, errorMessage: message };
  return {
    description: playKeys.serial.description,
    type: ['integer', 'string', 'array'],
    ...one,
    minItems: 1,
    items: { type: ['integer', 'string'], ...one },
  };
}

/** The composite playbook schema (what editors and `schemas/playbook.schema.json` see). */
export function buildPlaybookSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://trustplay.dev/schemas/playbook.schema.json',
    title: 'trustplay playbook',
    description: 'One play or a list of plays. Each play runs its tasks in order on the hosts it names.',
    anyOf: [
      { $ref: '#/$defs/play' },
      {
        type: 'array',
        // A decision on one key, not an anyOf: an editor then reports a broken play as a play.
        items: {
          if: { required: ['import_playbook'] },
          then: { $ref: '#/$defs/import' },
          else: { $ref: '#/$defs/play' },
        },
        minItems: 1,
      },
    ],
    $defs: {
      import: {
        type: 'object',
        additionalProperties: false,
        properties: {
          import_playbook: {
            type: 'string',
            minLength: 1,
            description: 'Import the plays of this playbook (relative to this one) here, at load time.',
          },
          name: { type: 'string', description: 'What the import is for.' },
        },
      },
      play: {
        type: 'object',
        additionalProperties: false,
        allOf: requiredOnly('play', ['hosts']),
        properties: { ...playKeys, serial: editorSerial() },
      },
      task: {
        type: 'object',
        additionalProperties: false,
        description: 'A task: an optional name, exactly one module key with its arguments, and common keys.',
        properties: {
          ...taskProperties,
          import_tasks: {
            type: 'string',
            minLength: 1,
            description:
              'Import the task list of this file (relative to this one) in place of this task, with its `when:` and `tags:`.',
          },
        },
        ...taskModuleRules,
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
              become_user: {
                type: 'string',
                pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*[$]?$',
                description:
                  "The user sudo runs commands as (default root); containerd's socket is then reached through a relay run as that user.",
              },
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
