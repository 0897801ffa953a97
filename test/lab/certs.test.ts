import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LabPki, makePki } from './certs.js';

function verify(ca: string, cert: string, host?: string): Promise<string> {
  const args = ['verify', '-CAfile', ca, ...(host ? ['-verify_hostname', host] : []), cert];
  return new Promise((resolve) => execFile('openssl', args, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`)));
}

describe('the lab PKI', () => {
  let dir: string;
  let pki: LabPki;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tp-pki-'));
    pki = await makePki(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('signs the registry leaf for registry.test and auth.test', async () => {
    expect(await verify(pki.ca.cert, pki.registry.cert, 'registry.test')).toContain(': OK');
    expect(await verify(pki.ca.cert, pki.registry.cert, 'auth.test')).toContain(': OK');
  });

  it('makes one broken leaf per TLS failure class', async () => {
    expect(await verify(pki.ca.cert, pki.selfSigned.cert)).toMatch(/self-signed certificate/);
    expect(await verify(pki.ca.cert, pki.expired.cert)).toMatch(/certificate has expired/);
    expect(await verify(pki.ca.cert, pki.wrongName.cert, 'wrongname.test')).toMatch(/hostname mismatch/);
    expect(await verify(pki.ca.cert, pki.wrongName.cert, 'other.test')).toContain(': OK');
  });

  it('gives the emulator a certificate for kube.test and 127.0.0.1', async () => {
    expect(await verify(pki.ca.cert, pki.kube.cert, 'kube.test')).toContain(': OK');
    const ip = await new Promise<string>((resolve) =>
      execFile('openssl', ['verify', '-CAfile', pki.ca.cert, '-verify_ip', '127.0.0.1', pki.kube.cert], (_e, o, e2) =>
        resolve(`${o}${e2}`),
      ),
    );
    expect(ip).toContain(': OK');
  });

  it('does not make the registry leaf a CA', async () => {
    const text = await new Promise<string>((resolve) =>
      execFile('openssl', ['x509', '-in', pki.registry.cert, '-noout', '-ext', 'basicConstraints'], (_e, o) =>
        resolve(o),
      ),
    );
    expect(text).toContain('CA:FALSE');
  });
});
