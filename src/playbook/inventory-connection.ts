/**
 * Ansible's connection variables (`ansible_host`, `ansible_port`, `ansible_become`, ... and their
 * older `ansible_ssh_*` names) as trustplay reads them, at whatever inventory level they are set.
 * Each is checked where it is defined, with the conversion Ansible applies when it connects:
 * ports and booleans as Ansible's `int()`/`boolean()` read them, so what Ansible refuses at
 * connect time is a located validation error here, before anything runs.
 */
import { isKnownSecret } from '../secrets/known.js';

/** What a connection variable means to trustplay. */
export type ConnectionField =
  | 'address'
  | 'port'
  | 'user'
  | 'identityFile'
  | 'connection'
  | 'become'
  | 'becomeUser'
  | 'becomeMethod'
  | 'becomePassword'
  | 'password';

/**
 * Ansible's names for each field; when several are set for a host, the first one in this order
 * wins, as in Ansible's PlayContext (MAGIC_VARIABLE_MAPPING lists the older `ansible_ssh_*` name
 * first, so `ansible_ssh_host` beats `ansible_host` whatever level sets either).
 */
export const ANSIBLE_CONNECTION_VARS: ReadonlyArray<readonly [string, ConnectionField]> = [
  ['ansible_ssh_host', 'address'],
  ['ansible_host', 'address'],
  ['ansible_ssh_port', 'port'],
  ['ansible_port', 'port'],
  ['ansible_ssh_user', 'user'],
  ['ansible_user', 'user'],
  ['ansible_ssh_private_key_file', 'identityFile'],
  ['ansible_private_key_file', 'identityFile'],
  ['ansible_connection', 'connection'],
  ['ansible_become', 'become'],
  ['ansible_become_user', 'becomeUser'],
  ['ansible_become_method', 'becomeMethod'],
  ['ansible_become_password', 'becomePassword'],
  ['ansible_become_pass', 'becomePassword'],
  ['ansible_ssh_pass', 'password'],
  ['ansible_password', 'password'],
  ['ansible_ssh_password', 'password'],
];

const FIELD_OF = new Map(ANSIBLE_CONNECTION_VARS);

export function connectionField(name: string): ConnectionField | undefined {
  return FIELD_OF.get(name);
}

/** Variable names whose values are secrets: never printed (`trustplay inventory` masks them). */
export function isSecretVar(name: string): boolean {
  const f = FIELD_OF.get(name);
  return f === 'becomePassword' || f === 'password' || /pass(word)?$|_token$|secret/i.test(name);
}

/** Ansible's boolean() (module_utils/parsing/convert_bool.py): the accepted spellings, any case. */
export function ansibleBoolean(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  if (['y', 'yes', 'on', '1', 'true', 't'].includes(s)) return true;
  if (['n', 'no', 'off', '0', 'false', 'f'].includes(s)) return false;
  return undefined;
}

/** Connections trustplay can make, by the name Ansible gives them. */
const CONNECTIONS: Record<string, 'ssh' | 'local'> = {
  ssh: 'ssh',
  smart: 'ssh',
  'ansible.builtin.ssh': 'ssh',
  local: 'local',
  'ansible.builtin.local': 'local',
};

/** No whitespace and no control characters: usable as a host name, address or user name. */
export function isPlainToken(s: string): boolean {
  if (!s) return false;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || c === 0x7f || /\s/u.test(ch)) return false;
  }
  return true;
}
const ADDRESS = { test: isPlainToken };

/** A value a connection variable takes, converted; or the sentence saying why it cannot be used. */
export function convertConnectionVar(
  name: string,
  value: unknown,
): { ok: true; value: unknown } | { ok: false; message: string } {
  const field = FIELD_OF.get(name);
  const bad = (what: string) => ({ ok: false as const, message: `\`${name}\` ${what}` });
  const shown = typeof value === 'string' ? JSON.stringify(value) : value === null ? 'empty' : typeof value;
  switch (field) {
    case undefined:
      return { ok: true, value };
    case 'address':
      if (typeof value !== 'string' && typeof value !== 'number')
        return bad(`must be a host name or IP address, not ${shown}`);
      if (!ADDRESS.test(String(value)))
        return bad(`must be a host name or IP address without spaces or control characters, not ${shown}`);
      return { ok: true, value: String(value) };
    case 'port': {
      const n =
        typeof value === 'number'
          ? value
          : typeof value === 'string' && /^\s*[0-9]+\s*$/.test(value)
            ? Number(value)
            : NaN;
      if (!Number.isInteger(n) || n < 1 || n > 65535) return bad(`must be a port number from 1 to 65535, not ${shown}`);
      return { ok: true, value: n };
    }
    case 'user':
    case 'becomeUser':
      if (typeof value !== 'string' && typeof value !== 'number') return bad(`must be a user name, not ${shown}`);
      if (!ADDRESS.test(String(value)))
        return bad(`must be a user name without spaces or control characters, not ${shown}`);
      return { ok: true, value: String(value) };
    case 'identityFile':
      if (typeof value !== 'string' || !value) return bad(`must be the path of a private key file, not ${shown}`);
      return { ok: true, value };
    case 'connection': {
      const c = typeof value === 'string' ? CONNECTIONS[value] : undefined;
      if (!c)
        return bad(
          `is ${shown}: trustplay connects with \`ssh\` (also \`smart\`) or \`local\` only; the \`${String(value)}\` connection is not supported`,
        );
      return { ok: true, value: c };
    }
    case 'become': {
      const b = ansibleBoolean(value);
      if (b === undefined) return bad(`must be a boolean (yes/no, true/false, on/off, 1/0), not ${shown}`);
      return { ok: true, value: b };
    }
    case 'becomeMethod':
      if (value !== 'sudo' && value !== 'ansible.builtin.sudo')
        return bad(`is ${shown}: trustplay becomes root with sudo only; other become methods are not supported`);
      return { ok: true, value: 'sudo' };
    case 'becomePassword':
      return bad(
        "puts the sudo password in the inventory, a file that gets copied around: write `{{ lookup('env', 'NAME') }}` instead, or set `become_password_env: NAME`, NAME being an environment variable holding the password",
      );
    case 'password':
      return bad(
        'sets an SSH password: trustplay logs in with keys or an ssh-agent only; use `ansible_ssh_private_key_file` (password login is not supported)',
      );
  }
}

// `{{ lookup('env', 'NAME') }}` (also `ansible.builtin.env`, either quote), and nothing else around it.
const ENV_LOOKUP =
  /^\s*\{\{\s*lookup\(\s*(['"])(?:ansible\.builtin\.)?env\1\s*,\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\2\s*\)\s*\}\}\s*$/;

/**
 * Where `ansible_become_password` takes the sudo password from, read from its written (untemplated)
 * value: an environment lookup maps onto `become_password_env`, so the password is read at connect
 * time and never held by the inventory; a `!vault` value (decrypted in memory as the inventory was
 * loaded, and marked secret) is the password itself. The one place this mapping is made. Undefined:
 * a password written in clear, which trustplay refuses.
 */
export function becomePasswordSource(value: unknown): { env: string } | { value: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = ENV_LOOKUP.exec(value);
  if (m) return { env: m[3]! };
  return isKnownSecret(value) ? { value } : undefined;
}
