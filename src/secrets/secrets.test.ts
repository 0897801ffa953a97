import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { moduleArgSchemas } from '../playbook/schema/modules.js';
import {
  describeValue,
  fileTextForDiff,
  isSecretKey,
  isSecretPath,
  MASK,
  maskJson,
  maskPem,
  maskToml,
  SecretSet,
  secretArgValues,
} from './index.js';

const imagePullVerifyArgs = moduleArgSchemas['image.pull.verify']!;
const containerdTlsArgs = moduleArgSchemas['containerd.tls']!;

const leaks = (out: string, ...secrets: string[]) => secrets.filter((s) => out.includes(s));

describe('maskToml', () => {
  it('masks every TOML string form, short values too, and keeps everything else byte for byte', () => {
    const toml = [
      '[plugins."io.containerd.grpc.v1.cri".registry.configs."r.test".auth]',
      '  username = "bob"',
      '  password = "ba"',
      "  auth = 'L1'",
      '  identitytoken = """',
      'ML-basic-tok"""',
      "  registrytoken = '''ML-lit-tok'''",
      '  token = """q""""',
      '  empty = ""',
      '[plugins."io.containerd.grpc.v1.cri".registry.configs."other".auth]',
      '  auth = { username = "u", password = "P" }',
      '  configs."x".auth.password = "DOT"',
      '  "password" = "QKEY"',
      '  password = 7',
      '  password = ["A1", "A2"]',
      '#  password = "OLD"',
      'ca_file = "/etc/ca.pem"',
      '',
    ].join('\n');
    const out = maskToml(toml);
    expect(
      leaks(out, '"ba"', "'L1'", 'ML-basic-tok', 'ML-lit-tok', 'q""', '"P"', 'DOT', 'QKEY', '= 7', 'A1', 'A2', 'OLD'),
    ).toEqual([]);
    expect(out).toContain('  password = "********"');
    expect(out).toContain("  auth = '********'");
    expect(out).toContain(`  identitytoken = """${MASK}"""`);
    expect(out).toContain(`  registrytoken = '''${MASK}'''`);
    expect(out).toContain('  username = "bob"');
    expect(out).toContain('  empty = ""');
    expect(out).toContain('username = "u"');
    expect(out).toContain('ca_file = "/etc/ca.pem"');
    expect(out).toContain('configs."r.test".auth]');
    // Nothing but the values changed.
    expect(out.split('\n')).toHaveLength(toml.split('\n').length - 1);
  });

  it('never throws on broken input and masks what it can read', () => {
    expect(maskToml('password = "unterminated\nuser = "x"')).toBe(`password = "${MASK}\nuser = "x"`);
    expect(maskToml("password = '''never closed")).toBe(`password = '''${MASK}`);
    expect(maskToml('"quoted\\" = still')).toBe('"quoted\\" = still');
  });
});

describe('maskJson', () => {
  it('masks secret values at any depth, numbers too, keeps keys and other values', () => {
    const json =
      '{\n  "auths": {\n    "registry.test:5000": { "auth": "dXNlcjpzM2NyZXQ=" },\n    "o": {"auth":"b3","identitytoken": "t", "password": 12}\n  },\n  "credsStore": "desktop"\n}\n';
    const out = maskJson(json);
    expect(leaks(out, 'dXNlcjpzM2NyZXQ=', '"b3"', '"t"', '12')).toEqual([]);
    expect(out).toContain('"registry.test:5000": { "auth": "********" }');
    expect(out).toContain('"credsStore": "desktop"');
    expect(out).toContain('"auths": {');
  });
});

describe('maskPem', () => {
  it('masks private key bodies (also inline in JSON strings), keeps certificates', () => {
    const key = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n';
    expect(maskPem(key)).toBe(`-----BEGIN EC PRIVATE KEY-----\n${MASK}\n-----END EC PRIVATE KEY-----\n`);
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(maskPem(cert)).toBe(cert);
    expect(maskPem('"-----BEGIN PRIVATE KEY-----\\nABC\\n-----END PRIVATE KEY-----"')).not.toContain('ABC');
    expect(maskPem('-----BEGIN RSA PRIVATE KEY-----\nABC')).not.toContain('ABC');
  });
});

describe('fileTextForDiff', () => {
  it('summarises binary and absent files and picks the format by name and content', () => {
    expect(fileTextForDiff('/x', Buffer.from([0, 1, 2]))).toBe('(binary, 3 bytes)\n');
    expect(fileTextForDiff('/x', null)).toBe('(absent)\n');
    expect(fileTextForDiff('/root/.docker/config.json', Buffer.from('{"auth": "ab"}'))).toBe(`{"auth": "${MASK}"}`);
    expect(fileTextForDiff('/etc/containerd/config.toml', Buffer.from("password = 'ab'"))).toBe(`password = '${MASK}'`);
  });
});

describe('SecretSet', () => {
  it('masks long secrets anywhere in free text, short ones only by position', () => {
    const s = new SecretSet();
    s.add('hunter22', 'ab', 1234, '');
    expect(s.maskText('login hunter22 failed for about ab; pin 1234')).toBe(
      `login ${MASK} failed for about ab; pin ${MASK}`,
    );
    expect(s.maskFile('/etc/containerd/config.toml', 'password = "ab"')).toBe(`password = "${MASK}"`);
  });

  it('masks a diff by its format and value, and a secret file by its size only', () => {
    const s = new SecretSet();
    s.add('LEAKYVALUE');
    const d = s.maskDiff({ target: '/c.toml', before: 'x = "LEAKYVALUE"\npassword = "a"', after: '' });
    expect(d.before).toBe(`x = "${MASK}"\npassword = "${MASK}"`);
    const k = s.maskDiff({ target: '/k', before: '', after: 'raw key bytes', secret: true });
    expect(k.after).toBe(`${MASK} (secret, 13 bytes)\n`);
  });

  it('collects the secrets the schemas mark and secret-named variables', () => {
    const s = new SecretSet();
    s.addArgs(imagePullVerifyArgs, {
      image: 'img',
      auth: { username: 'user1', password: 'pw-long', token: 'tok-long' },
    });
    s.addVariables({ registry_password: 'var-secret', registry: 'not-a-secret' });
    expect(s.maskText('img user1 pw-long tok-long var-secret not-a-secret')).toBe(
      `img user1 ${MASK} ${MASK} ${MASK} not-a-secret`,
    );
  });
});

describe('isSecretKey', () => {
  it('decides by the last word of the key', () => {
    for (const k of [
      'auth',
      'password',
      'registry_password',
      'identitytoken',
      'identityToken',
      'registry_token',
      'client_key',
      'privateKey',
      'client_secret',
      'passwd',
    ])
      expect(isSecretKey(k), k).toBe(true);
    for (const k of [
      'auths',
      'secrets',
      'imagePullSecrets',
      'secretName',
      'become_password_env',
      'token_file',
      'username',
      'key_file',
      'ca_file',
    ])
      expect(isSecretKey(k), k).toBe(false);
  });

  it('keeps the names of pull secrets (a ServiceAccount diff) readable', () => {
    expect(maskJson('{"imagePullSecrets": [{"name": "regcred"}], "secrets": ["regcred"]}')).toContain('"regcred"');
  });
});

describe('schema marks', () => {
  it('finds x-secret arguments', () => {
    expect(secretArgValues(containerdTlsArgs, { registry: 'r', client_key: 'KEY', ca: 'CA' })).toEqual(['KEY']);
    expect(isSecretPath(imagePullVerifyArgs, ['auth', 'password'])).toBe(true);
    expect(isSecretPath(imagePullVerifyArgs, ['auth'])).toBe(true);
    expect(isSecretPath(imagePullVerifyArgs, ['image'])).toBe(false);
  });

  it('describes secret and long values by type only', () => {
    expect(describeValue(123456, true)).toBe('a number');
    expect(describeValue('TOPSECRET-token-0123456789', false)).toBe('a string of 26 characters');
    expect(describeValue('hsots', false)).toBe('the string "hsots"');
    expect(describeValue('x', true)).toBe('a string');
  });
});

describe('real files', () => {
  const read = (rel: string) => readFileSync(new URL(rel, import.meta.url), 'utf8');

  it('masks every secret of a docker config.json and keeps the names', () => {
    const text = read('../../test/fixtures/image-modules/creds/docker-cli.in.json');
    const masked = maskJson(text);
    for (const secret of [
      'c3RhbGU6c3RhbGU=',
      'eyJhbGciOiJub25lIn0.stale-identity-token',
      'b3RoZXItdXNlcjpvdGhlci1wYXNz',
      'ZGlmZmVyZW50OnBvcnQ=',
    ])
      expect(masked).not.toContain(secret);
    expect(masked).toContain('"https://registry.test:5000/v1/"');
    expect(masked).toContain(`"identitytoken": "${MASK}"`);
    expect(masked).toContain('"email": "ops@example.com"');
    expect(masked.split('\n')).toHaveLength(text.split('\n').length);
  });

  it('masks secrets even in a config.json that does not parse', () => {
    expect(maskJson('{"auths": {"x": {"auth": "c2VjcmV0", "password":"p\\"w"}')).toBe(
      `{"auths": {"x": {"auth": "${MASK}", "password":"${MASK}"}`,
    );
  });

  it('masks the credentials of a containerd config.toml line for line', () => {
    const text = read('../containerd/fixtures/two-registries.toml');
    expect(text).toMatch(/password = "/);
    const masked = maskToml(text);
    expect(masked).not.toMatch(/password = "(?!\*{8}")/);
    expect(masked.split('\n')).toHaveLength(text.split('\n').length);
  });
});

describe('hideSecretVars (trustplay inventory)', () => {
  it('hides secret-named values and known secrets at any depth, keeps the rest', async () => {
    const { hideSecretVars, HIDDEN_VALUE } = await import('./vars.js');
    const { markSecret } = await import('./known.js');
    markSecret('from-a-vault-0042');
    const out = hideSecretVars(
      {
        ansible_become_password: 'pw-in-clear',
        empty_password: '',
        registry: 'reg.test:5000',
        nested: { list: ['ok', 'from-a-vault-0042'] },
      },
      (name) => /pass(word)?$/.test(name),
    );
    expect(out).toEqual({
      ansible_become_password: HIDDEN_VALUE,
      empty_password: '',
      registry: 'reg.test:5000',
      nested: { list: ['ok', HIDDEN_VALUE] },
    });
  });
});

describe('maskUrlUserinfo (proxy settings)', () => {
  it('masks user and password of a URL, with or without a scheme, and leaves others alone', async () => {
    const { maskUrlUserinfo } = await import('./url.js');
    expect(maskUrlUserinfo('http://user:s3cret@proxy:3128')).toBe('http://***@proxy:3128');
    expect(maskUrlUserinfo('user:s3cret@proxy:3128')).toBe('***@proxy:3128');
    expect(maskUrlUserinfo('http://proxy:3128')).toBe('http://proxy:3128');
  });
});
