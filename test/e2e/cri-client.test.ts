// The CRI client against a real containerd 1.6 (CRI plugin) and real docker-registry instances.
// Each failure class of image.pull.verify is produced for real and its message classified; run with
// TRUSTPLAY_RECORD_PULL_ERRORS=1 to rewrite src/cri/fixtures/pull-errors.json from this run.

import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { Client as SshClient } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyPullError, type PullFailureClass } from '../../src/cri/classify.js';
import {
  CriError,
  createCriClient,
  createCriClientOverStream,
  waitForCri,
  type CriImageClient,
} from '../../src/cri/client.js';
import {
  closedPort,
  createTestCa,
  pushTinyImage,
  startContainerd,
  startNxdomainDns,
  startRegistry,
  startSilentServer,
  trustCaFor,
  writeHtpasswd,
  type NxdomainDns,
  type PushedImage,
  type StandaloneContainerd,
  type TestRegistry,
} from '../support/containerd-standalone.js';
import { startSshd, sshdUnavailable, type Sshd } from '../support/sshd.js';

const HOSTS = [
  'registry.test',
  'wrongname.test',
  'expired.test',
  'plain.test',
  'auth.test',
  'closed.test',
  'blackhole.test',
];

let work: string;
let dns: NxdomainDns;
let ctr: StandaloneContainerd;
let client: CriImageClient;
const registries: TestRegistry[] = [];
let silent: { port: number; stop(): Promise<void> };
let secure: TestRegistry;
let expired: TestRegistry;
let plain: TestRegistry;
let authed: TestRegistry;
let caPath: string;
let caPem: string;
let tiny: PushedImage;
let refusedPort: number;
const recorded: { class: PullFailureClass; image: string; message: string }[] = [];

/** Pulls `image`, expecting a CriError; records its raw message under `expected`. */
async function pullFails(image: string, expected: PullFailureClass, timeoutMs?: number): Promise<CriError> {
  const err = await client.pullImage(image, timeoutMs ? { timeoutMs } : {}).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CriError);
  const criErr = err as CriError;
  recorded.push({ class: expected, image, message: criErr.details });
  return criErr;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tp-cri-e2e-'));
  const ca = await createTestCa(join(work, 'pki'));
  caPath = ca.caCertPath;
  caPem = ca.caCertPem;
  const storage = join(work, 'storage');
  const regCert = await ca.issue('registry', ['registry.test']);
  const expCert = await ca.issue('expired', ['expired.test'], { expired: true });
  const authCert = await ca.issue('auth', ['auth.test']);
  await writeHtpasswd(join(work, 'htpasswd'), 'puller', 'correct horse');

  secure = await startRegistry({ dir: join(work, 'r-secure'), storageDir: storage, tls: regCert });
  expired = await startRegistry({ dir: join(work, 'r-expired'), storageDir: storage, tls: expCert });
  plain = await startRegistry({ dir: join(work, 'r-plain'), storageDir: storage });
  authed = await startRegistry({
    dir: join(work, 'r-auth'),
    storageDir: storage,
    tls: authCert,
    htpasswdPath: join(work, 'htpasswd'),
  });
  registries.push(secure, expired, plain, authed);
  silent = await startSilentServer();
  refusedPort = await closedPort();

  tiny = await pushTinyImage({
    port: secure.port,
    servername: 'registry.test',
    caPem,
    repository: 'tp/tiny',
    tag: '1',
  });

  dns = await startNxdomainDns();
  ctr = await startContainerd({
    hosts: Object.fromEntries(HOSTS.map((h) => [h, '127.0.0.1'])),
    nameserver: dns.address,
  });
  client = createCriClient(ctr.socket);
  await waitForCri(client, 20_000);
});

afterAll(async () => {
  await client?.close();
  await ctr?.stop();
  await dns?.stop();
  await silent?.stop();
  for (const r of registries) await r.stop();
  if (process.env['TRUSTPLAY_RECORD_PULL_ERRORS'] === '1' && recorded.length > 0) {
    const out = new URL('../../src/cri/fixtures/pull-errors.json', import.meta.url);
    const note = 'Recorded from containerd 1.6.20 (Debian) by test/e2e/cri-client.test.ts; ports vary per run.';
    await writeFile(out, JSON.stringify({ note, errors: recorded }, null, 2) + '\n');
  }
  if (work) await rm(work, { recursive: true, force: true });
});

describe('CRI client against a standalone containerd', () => {
  it('reports the runtime version and lists an empty store', async () => {
    const v = await client.version();
    expect(v.runtimeName).toBe('containerd');
    expect(v.runtimeApiVersion).toBe('v1');
    expect(await client.listImages()).toEqual([]);
    expect(await client.imageStatus(`registry.test:${secure.port}/${tiny.ref}`)).toBeNull();
  });

  it('classifies an untrusted CA as unknown-authority', async () => {
    const err = await pullFails(`registry.test:${secure.port}/${tiny.ref}`, 'unknown-authority');
    expect(err.message).toContain(ctr.socket);
    expect(err.details).toContain('x509: certificate signed by unknown authority');
    expect(classifyPullError(err.details)).toMatchObject({ class: 'unknown-authority' });
    expect(classifyPullError(err.details).summary).toContain(`registry.test:${secure.port}`);
  });

  it('classifies a certificate for another name as name-mismatch', async () => {
    const err = await pullFails(`wrongname.test:${secure.port}/${tiny.ref}`, 'name-mismatch');
    expect(classifyPullError(err.details).class).toBe('name-mismatch');
  });

  it('classifies an expired certificate as expired', async () => {
    const err = await pullFails(`expired.test:${expired.port}/${tiny.ref}`, 'expired');
    expect(classifyPullError(err.details).class).toBe('expired');
  });

  it('classifies a plain-HTTP registry as plain-http', async () => {
    const err = await pullFails(`plain.test:${plain.port}/${tiny.ref}`, 'plain-http');
    expect(classifyPullError(err.details).class).toBe('plain-http');
  });

  it('classifies a closed port as unreachable', async () => {
    const err = await pullFails(`closed.test:${refusedPort}/${tiny.ref}`, 'unreachable');
    expect(classifyPullError(err.details).class).toBe('unreachable');
  });

  it('classifies an unresolvable name as dns', async () => {
    const err = await pullFails(`nohost.test:5000/${tiny.ref}`, 'dns');
    expect(classifyPullError(err.details).class).toBe('dns');
  });

  it('classifies a registry that never completes the TLS handshake as timeout', async () => {
    const err = await pullFails(`blackhole.test:${silent.port}/${tiny.ref}`, 'timeout');
    expect(classifyPullError(err.details).class).toBe('timeout');
  });

  it('turns its own deadline into a timeout-class CriError', async () => {
    const err = await client.pullImage(`blackhole.test:${silent.port}/${tiny.ref}`, { timeoutMs: 300 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CriError);
    expect((err as CriError).code).toBe(4);
    expect(classifyPullError((err as CriError).message).class).toBe('timeout');
  });

  it('pulls, inspects and removes an image once the CA is trusted, and reports a missing one', async () => {
    const host = `registry.test:${secure.port}`;
    await trustCaFor(ctr, host, caPath);
    const image = `${host}/${tiny.ref}`;
    const { imageRef } = await client.pullImage(image);
    expect(imageRef).toBe(tiny.configDigest);

    const status = await client.imageStatus(image);
    expect(status).toMatchObject({
      id: tiny.configDigest,
      repoTags: [image],
      repoDigests: [`${host}/tp/tiny@${tiny.manifestDigest}`],
    });
    expect(status?.size).toBeGreaterThan(0);
    expect((await client.listImages()).map((i) => i.id)).toContain(tiny.configDigest);

    // A second tag on the same content: removeImage by one name must take both, as crictl rmi does.
    await pushTinyImage({ port: secure.port, servername: 'registry.test', caPem, repository: 'tp/tiny', tag: 'also' });
    await client.pullImage(`${host}/tp/tiny:also`);
    expect((await client.imageStatus(image))?.repoTags.sort()).toEqual([image, `${host}/tp/tiny:also`].sort());
    await client.removeImage(image);
    expect(await client.imageStatus(image)).toBeNull();
    expect(await client.imageStatus(`${host}/tp/tiny:also`)).toBeNull();
    await client.removeImage(image); // absent: still fine

    const err = await pullFails(`${host}/tp/missing:1`, 'not-found');
    expect(classifyPullError(err.details).class).toBe('not-found');
  });

  it('classifies missing credentials as unauthorized and pulls with them', async () => {
    const host = `auth.test:${authed.port}`;
    await trustCaFor(ctr, host, caPath);
    const image = `${host}/${tiny.ref}`;
    const err = await pullFails(image, 'unauthorized');
    expect(classifyPullError(err.details).class).toBe('unauthorized');
    const bad = await client.pullImage(image, { auth: { username: 'puller', password: 'wrong' } }).then(
      () => undefined,
      (e: unknown) => e as CriError,
    );
    expect(bad).toBeInstanceOf(CriError);
    recorded.push({ class: 'unauthorized', image, message: bad?.details ?? '' });
    expect(classifyPullError(bad?.details ?? '').class).toBe('unauthorized');
    expect(bad?.message).not.toContain('wrong');

    const { imageRef } = await client.pullImage(image, { auth: { username: 'puller', password: 'correct horse' } });
    expect(imageRef).toBe(tiny.configDigest);
    await client.removeImage(image);
  });
});

describe('CRI client over a stream bridge (the SSH path, with net.connect standing in for the channel)', () => {
  it('serves calls through streams opened per connection and cleans up on close', async () => {
    let opened = 0;
    const bridged = await createCriClientOverStream(async () => {
      opened++;
      return connect(ctr.socket);
    }, `${ctr.socket} on test-node`);
    expect((await bridged.version()).runtimeName).toBe('containerd');
    expect(await bridged.listImages()).toEqual(await client.listImages());
    const err = await bridged.pullImage(`plain.test:${plain.port}/${tiny.ref}`).then(
      () => undefined,
      (e: unknown) => e as CriError,
    );
    expect(err?.message).toContain('on test-node');
    expect(classifyPullError(err?.details ?? '').class).toBe('plain-http');
    expect(opened).toBeGreaterThanOrEqual(1);

    const before = await bridgeDirs();
    await bridged.close();
    const after = await bridgeDirs();
    // Exactly one bridge dir (ours) disappeared.
    expect(before.filter((d) => !after.includes(d))).toHaveLength(1);
  });

  it("explains a stream that cannot be opened with the stream's own error", async () => {
    const bridged = await createCriClientOverStream(async () => {
      throw new Error('open failed (administratively prohibited)');
    }, '/run/containerd/containerd.sock on node-a');
    const err = await bridged.listImages().then(
      () => undefined,
      (e: unknown) => e as CriError,
    );
    await bridged.close();
    expect(err).toBeInstanceOf(CriError);
    expect(err?.message).toBe(
      "cannot reach containerd's CRI socket /run/containerd/containerd.sock on node-a: open failed (administratively prohibited)",
    );
  });
});

async function bridgeDirs(): Promise<string[]> {
  const names = await readdir(tmpdir());
  const dirs: string[] = [];
  for (const n of names) {
    if (n.startsWith('trustplay-cri-') && (await stat(join(tmpdir(), n))).isDirectory()) dirs.push(n);
  }
  return dirs;
}

// The real SSH path: OpenSSH's direct-streamlocal@openssh.com to containerd's socket through sshd,
// opened with ssh2 directly (src/connection/ssh.ts's openUnixSocket does the same on a host).
describe.skipIf(sshdUnavailable() !== undefined)('CRI client over a real OpenSSH stream-local forward', () => {
  let sshd: Sshd;
  let ssh: SshClient;

  beforeAll(async () => {
    sshd = await startSshd();
    const privateKey = await readFile(sshd.clientKey);
    ssh = new SshClient();
    await new Promise<void>((resolve, reject) => {
      ssh.once('ready', () => resolve());
      ssh.once('error', reject);
      const known = sshd.hostKeys.map((k) => Buffer.from(k.pub.split(' ')[1] ?? '', 'base64'));
      ssh.connect({
        host: sshd.address,
        port: sshd.port,
        username: 'root',
        privateKey,
        hostVerifier: (key: Buffer) => known.some((k) => k.equals(key)),
      });
    });
  });

  afterAll(async () => {
    ssh?.end();
    await sshd?.stop();
  });

  const forward = (path: string) => (): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      ssh.openssh_forwardOutStreamLocal(path, (err, channel) => (err ? reject(err) : resolve(channel)));
    });

  it('lists, pulls and inspects images through the forwarded socket', async () => {
    const remote = await createCriClientOverStream(forward(ctr.socket), `${ctr.socket} on ssh-node`);
    try {
      expect((await remote.version()).runtimeName).toBe('containerd');
      const host = `registry.test:${secure.port}`;
      await trustCaFor(ctr, host, caPath);
      const image = `${host}/${tiny.ref}`;
      expect((await remote.pullImage(image)).imageRef).toBe(tiny.configDigest);
      expect((await remote.listImages()).map((i) => i.id)).toContain(tiny.configDigest);
      await remote.removeImage(image);
      expect(await client.imageStatus(image)).toBeNull();
    } finally {
      await remote.close();
    }
  });

  it("reports sshd's refusal when the remote socket does not exist", async () => {
    const remote = await createCriClientOverStream(
      forward('/run/containerd/missing.sock'),
      '/run/containerd/missing.sock on ssh-node',
    );
    const err = await remote.listImages().then(
      () => undefined,
      (e: unknown) => e as CriError,
    );
    await remote.close();
    expect(err).toBeInstanceOf(CriError);
    expect(err?.message).toMatch(
      /^cannot reach containerd's CRI socket \/run\/containerd\/missing\.sock on ssh-node: /,
    );
    expect(err?.message).toContain('sshd refused to open it');
  });
});
