/**
 * Chain evaluation on certificates made by openssl at test time (the lab's own PKI code; no key is
 * committed). Each case is a failure containerd's Go client reports, checked for the cause Go names
 * first and, where fixing it reveals another, the next.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, makeVariantPki, type LabPki, type VariantPki } from '../../test/lab/certs.js';
import { certsFromPem, type Cert } from './certificate.js';
import { evaluateChain, type Anchor } from './evaluate.js';
import { noProxyMatches, proxyFor } from './node-view.js';
import { maskUrlUserinfo } from '../secrets/url.js';

let dir: string;
let pki: LabPki;
let v: VariantPki;
const load = async (file: string): Promise<Cert[]> => certsFromPem(await readFile(file, 'utf8'));
const anchor = async (file: string, source = 'test'): Promise<Anchor[]> =>
  (await load(file)).map((cert) => ({ cert, source }));
const now = () => new Date();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-diag-pki-'));
  pki = await makePki(dir);
  v = await makeVariantPki(dir, pki.ca);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const causes = (r: ReturnType<typeof evaluateChain>) => r.findings.map((f) => f.cause);

describe('evaluateChain', () => {
  it('trusts a leaf the node has the CA for, and names the anchor', async () => {
    const r = evaluateChain({
      served: await load(pki.registry.cert),
      anchors: await anchor(pki.ca.cert, 'hosts.toml'),
      hostname: 'registry.test',
      now: now(),
    });
    expect(r.findings).toEqual([]);
    expect(r.path).toHaveLength(2);
    expect(r.anchor?.source).toBe('hosts.toml');
  });

  it('unknown authority: names the issuer and its key id when the root is not sent', async () => {
    const r = evaluateChain({
      served: await load(pki.registry.cert),
      anchors: [],
      hostname: 'registry.test',
      now: now(),
    });
    expect(causes(r)).toEqual(['unknown-authority']);
    expect(r.findings[0]?.detail).toMatch(/does not send its root.*"trustplay lab CA".*key id [0-9a-f:]+/);
  });

  it('self-signed leaf: unknown until the leaf itself is trusted', async () => {
    const served = await load(pki.selfSigned.cert);
    expect(causes(evaluateChain({ served, anchors: [], hostname: 'selfsigned.test', now: now() }))).toEqual([
      'self-signed',
    ]);
    expect(
      evaluateChain({ served, anchors: await anchor(pki.selfSigned.cert), hostname: 'selfsigned.test', now: now() })
        .findings,
    ).toEqual([]);
  });

  it('missing intermediate: leaf alone, the registry CA is the root; fixed by a bundle with the intermediate', async () => {
    const served = await load(v.noChain.cert);
    const root = await anchor(pki.ca.cert, 'hosts.toml ca');
    const r = evaluateChain({ served, anchors: root, registryAnchors: root, hostname: 'nochain.test', now: now() });
    expect(causes(r)).toEqual(['missing-intermediate']);
    expect(r.findings[0]?.detail).toMatch(/only its leaf, issued by "trustplay lab intermediate CA"/);
    expect(
      evaluateChain({ served, anchors: await anchor(v.chainCaBundle), hostname: 'nochain.test', now: now() }).findings,
    ).toEqual([]);
  });

  it("a root with the name of the leaf's issuer but another key is a re-created CA, not a missing intermediate", async () => {
    // A second lab PKI: the same "trustplay lab CA" name, a new key.
    const other = await makePki(await mkdtemp(path.join(dir, 'recreated-')));
    const given = await anchor(other.ca.cert, 'hosts.toml ca');
    const r = evaluateChain({
      served: await load(pki.registry.cert),
      anchors: given,
      registryAnchors: given,
      hostname: 'registry.test',
      now: now(),
    });
    expect(causes(r)).toEqual(['unknown-authority']);
    expect(r.findings[0]?.detail).toMatch(
      /the root given for this registry, "trustplay lab CA" \(hosts\.toml ca, .*\), has the name of the leaf's issuer but did not sign it: another CA of that name \(key id [0-9a-f:]+; the given root's is [0-9a-f:]+\)/,
    );
  });

  it("a leaf served alone under an unrelated root: the detail says that root may not be this registry's at all", async () => {
    const given = await anchor(pki.selfSigned.cert, '--ca selfsigned.pem');
    const r = evaluateChain({
      served: await load(pki.registry.cert),
      anchors: given,
      registryAnchors: given,
      hostname: 'registry.test',
      now: now(),
    });
    expect(causes(r)).toEqual(['missing-intermediate']);
    expect(r.findings[0]?.detail).toMatch(
      /did not sign the leaf itself: if "trustplay lab CA" is not an intermediate under it, that root is not this registry's CA at all/,
    );
  });

  it('the same leaf with its intermediate served validates against the root alone', async () => {
    const r = evaluateChain({
      served: await load(v.chain.cert),
      anchors: await anchor(pki.ca.cert),
      hostname: 'chain.test',
      now: now(),
    });
    expect(r.findings).toEqual([]);
    expect(r.path?.map((c) => c.x509.subject)).toEqual([
      'CN=chain.test',
      'CN=trustplay lab intermediate CA',
      'CN=trustplay lab CA',
    ]);
  });

  it('hostname mismatch comes before trust, as in Go', async () => {
    const r = evaluateChain({
      served: await load(pki.wrongName.cert),
      anchors: [],
      hostname: 'wrongname.test',
      now: now(),
    });
    expect(causes(r)).toEqual(['name-mismatch', 'unknown-authority']);
    expect(r.findings[0]?.detail).toMatch(/valid for DNS:other\.test, not wrongname\.test/);
  });

  it('a name only in the Common Name is the legacy-CN cause, not a plain mismatch', async () => {
    const r = evaluateChain({
      served: await load(v.cnOnly.cert),
      anchors: await anchor(pki.ca.cert),
      hostname: 'cnonly.test',
      now: now(),
    });
    expect(causes(r)).toEqual(['cn-only']);
    const other = evaluateChain({
      served: await load(v.cnOnly.cert),
      anchors: await anchor(pki.ca.cert),
      hostname: 'else.test',
      now: now(),
    });
    expect(causes(other)).toEqual(['name-mismatch']);
  });

  it('SHA-1: refused once the CA is trusted; unknown authority before', async () => {
    const served = await load(v.sha1.cert);
    expect(served[0]?.signatureName).toBe('ecdsa-with-SHA1');
    expect(
      causes(evaluateChain({ served, anchors: await anchor(pki.ca.cert), hostname: 'sha1.test', now: now() })),
    ).toEqual(['sha1-signature']);
    expect(causes(evaluateChain({ served, anchors: [], hostname: 'sha1.test', now: now() }))).toEqual([
      'unknown-authority',
    ]);
  });

  it('expired and not yet valid, by the node clock, before everything else', async () => {
    const expired = evaluateChain({
      served: await load(pki.expired.cert),
      anchors: [],
      hostname: 'expired.test',
      now: now(),
      controllerNow: now(),
    });
    expect(causes(expired)).toEqual(['expired', 'unknown-authority']);
    const notYet = evaluateChain({
      served: await load(v.notYet.cert),
      anchors: await anchor(pki.ca.cert),
      hostname: 'notyet.test',
      now: now(),
      controllerNow: now(),
    });
    expect(causes(notYet)).toEqual(['not-yet-valid']);
  });

  it('clock skew: valid by the controller clock, not by the node clock (a stubbed node clock)', async () => {
    const nodeClock = new Date('2019-06-01T00:00:00Z');
    const r = evaluateChain({
      served: await load(pki.registry.cert),
      anchors: await anchor(pki.ca.cert),
      hostname: 'registry.test',
      now: nodeClock,
      controllerNow: now(),
    });
    expect(causes(r)).toEqual(['clock-skew']);
    expect(r.findings[0]?.detail).toMatch(/node's clock is wrong/);
  });
});

describe('containerd proxy environment (Go httpproxy rules)', () => {
  it('NO_PROXY by name, suffix, port and *', () => {
    expect(noProxyMatches('registry.test', 'registry.test', '5000')).toBe(true);
    expect(noProxyMatches('.test', 'registry.test', '5000')).toBe(true);
    expect(noProxyMatches('test', 'registry.test', '5000')).toBe(true);
    expect(noProxyMatches('registry.test:443', 'registry.test', '5000')).toBe(false);
    expect(noProxyMatches('other.test, *', 'registry.test', '5000')).toBe(true);
    expect(noProxyMatches('other.test', 'registry.test', '5000')).toBe(false);
  });
  it('no proxy for loopback names; userinfo masked', () => {
    const env = { httpsProxy: 'http://p:3128', sources: [], unitLines: [] };
    expect(proxyFor(env, 'localhost:5000')).toBeUndefined();
    expect(proxyFor(env, '127.0.0.1:5000')).toBeUndefined();
    expect(proxyFor(env, 'registry.test:5000')).toBe('http://p:3128');
    expect(maskUrlUserinfo('http://user:s3cret@proxy:3128')).toBe('http://***@proxy:3128');
    expect(maskUrlUserinfo('http://proxy:3128')).toBe('http://proxy:3128');
  });
});
