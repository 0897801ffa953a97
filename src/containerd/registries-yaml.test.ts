import { describe, expect, it } from 'vitest';
import {
  inspectRegistries,
  mirrorFoldsIntoDefault,
  removeRegistriesAuth,
  selfMirrorEndpoint,
  setRegistriesSelfMirror,
  setRegistriesTls,
} from './registries-yaml.js';
import { parseFlavour } from './flavour.js';

const FILE = '/etc/rancher/k3s/registries.yaml';
// A person's file: comments, odd spacing, a flow sequence, quoted keys, another registry's auth.
const PERSON = `# Registries for this node (managed by ops, ticket OPS-1234)
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.corp.example:5000"   # the pull-through cache
    rewrite:
      "^rancher/(.*)": "mirrorproject/rancher-images/$1"
  "registry.k8s.io":
      endpoint: ['https://mirror.corp.example:5000']

configs:
  "mirror.corp.example:5000":
    auth:
      username: puller # robot account
      password: 'xxx'
    tls:
      ca_file: /etc/ssl/corp-ca.pem
`;

describe('registries.yaml edits (k3s/RKE2)', () => {
  it('adds a registry’s tls entry keeping every other byte, and removing it gives the file back exactly', () => {
    const r = setRegistriesTls(PERSON, FILE, 'registry.test:5000', {
      ca_file: '/etc/rancher/k3s/tls/registry.test:5000/ca.crt',
    });
    expect(r).toMatchObject({ ok: true, changed: true, reformatted: false });
    if (!r.ok) return;
    expect(r.text).toBe(
      `${PERSON}  registry.test:5000:\n    tls:\n      ca_file: /etc/rancher/k3s/tls/registry.test:5000/ca.crt\n`,
    );
    expect(
      setRegistriesTls(r.text, FILE, 'registry.test:5000', {
        ca_file: '/etc/rancher/k3s/tls/registry.test:5000/ca.crt',
      }),
    ).toMatchObject({ changed: false });
    const back = setRegistriesTls(r.text, FILE, 'registry.test:5000', null);
    expect(back.ok && back.text).toBe(PERSON);
  });

  it('follows the file’s own indentation (4 spaces, sequences not indented) so the inserted lines nest right', () => {
    const four =
      'mirrors:\n    docker.io:\n        endpoint:\n        - "https://m:5000"\nconfigs:\n    "m:5000":\n        tls:\n            insecure_skip_verify: true   # lab\n';
    const r = setRegistriesTls(four, FILE, 'r.test', { ca_file: '/ca.crt' });
    expect(r.ok && r.text).toBe(`${four}    r.test:\n        tls:\n            ca_file: /ca.crt\n`);
    expect(r.ok && r.reformatted).toBe(false);
  });

  it('replaces only the keys trustplay manages, creates a missing file, and removes auth by key without values in the result', () => {
    const r = setRegistriesTls(PERSON, FILE, 'mirror.corp.example:5000', { insecure_skip_verify: true });
    expect(r.ok && r.text).toContain('    tls:\n      insecure_skip_verify: true\n');
    expect(r.ok && r.text).not.toContain('corp-ca.pem');
    expect(setRegistriesTls(null, FILE, 'r.test', { ca_file: '/x' })).toMatchObject({
      text: 'configs:\n  r.test:\n    tls:\n      ca_file: /x\n',
    });
    const a = removeRegistriesAuth(PERSON, FILE, (k) => k === 'mirror.corp.example:5000');
    expect(a).toMatchObject({ ok: true, changed: true, removed: ['configs."mirror.corp.example:5000".auth'] });
    expect(a.ok && a.text).toBe(
      PERSON.replace("    auth:\n      username: puller # robot account\n      password: 'xxx'\n", ''),
    );
  });

  it('adds the registry’s own mirror entry (the pre-k3s#9839 workaround) in place, once, and removes exactly that entry again', () => {
    expect(selfMirrorEndpoint('registry.test:5000')).toBe('https://registry.test:5000/v2/');
    const r = setRegistriesSelfMirror(PERSON, FILE, 'registry.test:5000', true);
    expect(r).toMatchObject({ ok: true, changed: true, reformatted: false });
    if (!r.ok) return;
    // Inserted at the end of `mirrors`, every other line as it was.
    expect(r.text).toBe(
      PERSON.replace(
        "      endpoint: ['https://mirror.corp.example:5000']\n",
        "      endpoint: ['https://mirror.corp.example:5000']\n  registry.test:5000:\n    endpoint:\n      - https://registry.test:5000/v2/\n",
      ),
    );
    expect(inspectRegistries(r.text, FILE).ok && inspectRegistries(r.text, FILE)).toMatchObject({
      info: { mirrors: { 'registry.test:5000': { endpoint: ['https://registry.test:5000/v2/'] } } },
    });
    expect(setRegistriesSelfMirror(r.text, FILE, 'registry.test:5000', true)).toMatchObject({ changed: false });
    const back = setRegistriesSelfMirror(r.text, FILE, 'registry.test:5000', false);
    expect(back.ok && back.text).toBe(PERSON);
  });

  it('never touches a person’s own mirror entry for the registry, and creates `mirrors` where it is missing or empty', () => {
    for (const present of [true, false])
      expect(setRegistriesSelfMirror(PERSON, FILE, 'docker.io', present)).toMatchObject({
        changed: false,
        text: PERSON,
      });
    const ours = 'mirrors:\n  r.test:\n    endpoint:\n      - https://r.test/v2/\n    rewrite:\n      "a": "b"\n';
    expect(setRegistriesSelfMirror(ours, FILE, 'r.test', false)).toMatchObject({ changed: false, text: ours });
    expect(setRegistriesSelfMirror(null, FILE, 'r.test', true)).toMatchObject({
      text: 'mirrors:\n  r.test:\n    endpoint:\n      - https://r.test/v2/\n',
    });
    const empty = setRegistriesSelfMirror(
      'mirrors:\nconfigs:\n  r.test:\n    tls:\n      ca_file: /x\n',
      FILE,
      'r.test',
      true,
    );
    expect(empty.ok && inspectRegistries(empty.text, FILE)).toMatchObject({
      info: {
        mirrors: { 'r.test': { endpoint: ['https://r.test/v2/'] } },
        configs: { 'r.test': { tls: { ca_file: '/x' } } },
      },
    });
    const gone = setRegistriesSelfMirror(
      'mirrors:\n  r.test:\n    endpoint:\n      - https://r.test/v2/\n',
      FILE,
      'r.test',
      false,
    );
    expect(gone.ok && gone.text).toBe('');
  });

  it('knows a person’s mirror entry that k3s folds into the registry’s default endpoint (no host table before the k3s#9839 fix)', () => {
    const folds = (endpoint: string[]): boolean =>
      mirrorFoldsIntoDefault({ mirrors: { 'r.test:5000': { endpoint } }, configs: {} }, 'r.test:5000');
    for (const e of ['r.test:5000', 'https://r.test:5000', 'https://r.test:5000/', 'https://r.test:5000/v2'])
      expect(folds([e]), e).toBe(true);
    expect(folds([])).toBe(true);
    for (const e of ['https://r.test:5000/v2/', 'https://mirror.test', 'http://r.test:5000', 'r.test:5000/proxy'])
      expect(folds([e]), e).toBe(false);
    expect(mirrorFoldsIntoDefault({ mirrors: {}, configs: {} }, 'r.test:5000')).toBe(false);
  });

  it('refuses what it cannot edit in place with one sentence naming the file', () => {
    expect(setRegistriesTls('configs: [1, 2]\n', FILE, 'r', { ca_file: '/x' })).toMatchObject({
      ok: false,
      error: `${FILE}: \`configs\` is not a mapping; fix it by hand, then run again.`,
    });
    const bad = inspectRegistries('mirrors:\n  a: [\n', FILE);
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^\/etc\/rancher\/k3s\/registries\.yaml is not valid YAML at line \d+:\d+/);
  });
});

describe('flavour detection', () => {
  it('k3s needs its header or a unit (a binary or a copied registries.yaml alone is not k3s); Bottlerocket and microk8s by their own marks', () => {
    expect(parseFlavour('os debian\nk3s binary\nk3s registries\n').kind).toBe('containerd');
    const k3s = parseFlavour('os debian\nk3s header\nunit k3s-agent active\nrancher socket\n');
    expect(k3s).toMatchObject({
      kind: 'k3s',
      unit: 'k3s-agent',
      registriesFile: '/etc/rancher/k3s/registries.yaml',
      socket: '/run/k3s/containerd/containerd.sock',
    });
    expect(parseFlavour('os sles\nunit rke2-server installed\n')).toMatchObject({ kind: 'rke2', unit: 'rke2-server' });
    expect(parseFlavour('os bottlerocket\n').kind).toBe('bottlerocket');
    expect(parseFlavour('os ubuntu\nmicrok8s template\n')).toMatchObject({
      kind: 'microk8s',
      certsDir: '/var/snap/microk8s/current/args/certs.d',
    });
  });
});
