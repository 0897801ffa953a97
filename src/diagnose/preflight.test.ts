/**
 * containerd.tls's verify_ca pre-flight, without a node: the CA check it shares with `diagnose
 * --ca` (checkCa, on certificates made by openssl at test time) and the verdict plan draws from it
 * for auto / true / false.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, makeVariantPki, type LabPki, type VariantPki } from '../../test/lab/certs.js';
import { certsFromPem, type Cert } from './certificate.js';
import { checkCa } from './diagnose.js';
import { preflightOutcome, type CaPreflight } from './preflight.js';

let dir: string;
let pki: LabPki;
let v: VariantPki;
const load = async (file: string): Promise<Cert[]> => certsFromPem(await readFile(file, 'utf8'));

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-preflight-pki-'));
  pki = await makePki(dir);
  v = await makeVariantPki(dir, pki.ca);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const check = async (served: string, ca: string, hostname: string, anchors: Cert[] = []) =>
  checkCa({
    served: await load(served),
    ca: { file: 'ca.pem', certs: await load(ca) },
    anchors: anchors.map((cert) => ({ cert, source: 'OS store' })),
    hostname,
    hostPort: `${hostname}:443`,
    now: new Date(),
  });

describe('checkCa (diagnose --ca and the verify_ca pre-flight)', () => {
  it('the right CA validates the served chain', async () => {
    const c = await check(pki.registry.cert, pki.ca.cert, 'registry.test');
    expect(c).toMatchObject({ validates: true, completes_chain: true, findings: [] });
  });

  it('a CA that did not sign the chain does not complete it, and says what signed it', async () => {
    const c = await check(pki.registry.cert, v.proxyCa.cert, 'registry.test');
    expect(c.validates).toBe(false);
    expect(c.completes_chain).toBe(false);
    expect(c.findings.map((f) => f.cause)).toEqual(['unknown-authority']);
    expect(c.detail).toMatch(/^ca\.pem does not validate the chain registry\.test:443 serves.*"trustplay lab CA"/);
  });

  it('the root alone does not complete a chain served without its intermediate; the bundle does', async () => {
    expect((await check(v.noChain.cert, pki.ca.cert, 'nochain.test')).completes_chain).toBe(false);
    expect((await check(v.noChain.cert, v.chainCaBundle, 'nochain.test')).validates).toBe(true);
  });

  it("the right CA for a SHA-1 signed leaf completes the chain: the signature is the owner's to fix, not a CA's", async () => {
    const c = await check(v.sha1.cert, pki.ca.cert, 'sha1.test');
    expect(c).toMatchObject({ validates: false, completes_chain: true });
    expect(c.findings.map((f) => f.cause)).toEqual(['sha1-signature']);
  });

  it('the right CA for a leaf naming another host completes the chain but does not validate it', async () => {
    const c = await check(pki.wrongName.cert, pki.ca.cert, 'wrongname.test');
    expect(c).toMatchObject({ validates: false, completes_chain: true });
    expect(c.findings.map((f) => f.cause)).toEqual(['name-mismatch']);
  });

  it('anchors passed in (the OS store) count with the CA, as containerd adds the CA to the system pool', async () => {
    const c = await check(pki.registry.cert, v.proxyCa.cert, 'registry.test', await load(pki.ca.cert));
    expect(c.validates).toBe(true);
  });
});

describe('preflightOutcome', () => {
  const ok: CaPreflight = {
    kind: 'checked',
    validates: true,
    completesChain: true,
    detail: 'ca.pem validates the chain',
    diagnosis: 'unknown-authority: ...',
    chain: [],
  };
  const wrong: CaPreflight = {
    kind: 'checked',
    validates: false,
    completesChain: false,
    detail:
      'ca.pem does not validate the chain r.test:443 serves to this node: no CA the node trusts signed this chain',
    diagnosis: 'unknown-authority: x509: certificate signed by unknown authority',
    chain: ['subject "CN=r.test", issuer "CN=lab CA", sha256:ab'],
  };
  const leafOnly: CaPreflight = { ...wrong, completesChain: true, detail: 'ca.pem completes the chain, but: expired' };
  const down: CaPreflight = { kind: 'unchecked', reason: "the node's connection to r.test:443 was refused" };

  it('a CA that validates: nothing to say, whatever verify_ca is', () => {
    for (const verify of ['auto', true] as const)
      expect(preflightOutcome(verify, 'r.test', ok)).toEqual({ warnings: [] });
  });

  it('a CA that does not reach the served chain is refused under auto and true, with the diagnosis and the chain', () => {
    for (const verify of ['auto', true] as const) {
      const o = preflightOutcome(verify, 'r.test', wrong);
      expect(o.refuse).toMatch(/does not validate the chain r\.test:443.*nothing was written/);
      expect(o.refuse).toContain('unknown-authority: x509: certificate signed by unknown authority');
      expect(o.refuse).toContain('issuer "CN=lab CA", sha256:ab');
    }
  });

  it('verify_ca: false never refuses (the pre-flight is not even run)', () => {
    expect(preflightOutcome(false, 'r.test', wrong)).toEqual({ warnings: [] });
    expect(preflightOutcome(false, 'r.test', undefined)).toEqual({ warnings: [] });
  });

  it('an unreachable registry: a warning under auto, a refusal under true', () => {
    const auto = preflightOutcome('auto', 'r.test', down);
    expect(auto.refuse).toBeUndefined();
    expect(auto.warnings).toEqual([expect.stringMatching(/could not be checked.*was refused.*written unchecked/)]);
    expect(preflightOutcome(true, 'r.test', down).refuse).toMatch(/verify_ca: true requires the check/);
  });

  it('a CA that completes the chain with a leaf problem left: written, with a warning', () => {
    const o = preflightOutcome('auto', 'r.test', leafOnly);
    expect(o.refuse).toBeUndefined();
    expect(o.warnings).toEqual([expect.stringMatching(/completes the chain, but: expired.*a CA cannot fix that/)]);
  });
});
