/**
 * The lab's PKI, made with the `openssl` command: a private CA and server certificates for the
 * registry and its broken variants, so each TLS failure class can be reproduced for real.
 * ECDSA P-256 keys keep generation instant.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from './procs.js';

/** A certificate and its private key, both PEM files. */
export interface CertPair {
  cert: string;
  key: string;
}

/** Every certificate the lab serves. */
export interface LabPki {
  ca: CertPair;
  /** `registry.test` and `auth.test`, signed by the CA. */
  registry: CertPair;
  /** Self-signed leaf for `selfsigned.test` (not chained to the CA). */
  selfSigned: CertPair;
  /** CA-signed leaf for `expired.test`, valid only in January 2020. */
  expired: CertPair;
  /** CA-signed leaf naming `other.test`, served as `wrongname.test`. */
  wrongName: CertPair;
  /** Kubernetes API emulator: `kube.test` and 127.0.0.1. */
  kube: CertPair;
}

// Our own config instead of the system openssl.cnf, whose defaults (v3_ca on every req -x509)
// would make leaves into CAs.
const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = \${ENV::LAB_SAN}
[nosan_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[int_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
default_ca = lab_ca
[lab_ca]
database = \${ENV::LAB_CADIR}/index.txt
new_certs_dir = \${ENV::LAB_CADIR}
serial = \${ENV::LAB_CADIR}/serial
default_md = sha256
policy = any_policy
copy_extensions = none
unique_subject = no
[any_policy]
commonName = supplied
`;

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/**
 * A self-signed CA certificate `CN=<name>` valid `days` days, made with openssl as an operator
 * would (`<file>.pem` and `<file>.key` under `dir`): a CA unrelated to the lab's, for tests that
 * need another CA, a short-lived one, or a rotation.
 */
export async function selfSignedCa(dir: string, file: string, name: string, days = 30): Promise<CertPair> {
  const cert = path.join(dir, `${file}.pem`);
  const key = path.join(dir, `${file}.key`);
  await run('openssl', [
    'req',
    '-x509',
    ...EC,
    '-keyout',
    key,
    '-out',
    cert,
    '-subj',
    `/CN=${name}`,
    '-days',
    String(days),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

/**
 * One certificate made with `openssl req -x509` under `dir`: `ext` is a section of OPENSSL_CNF,
 * `san` its subjectAltName, signed by `signer` (self-signed when null), valid 30 days.
 */
async function reqCert(
  dir: string,
  name: string,
  cn: string,
  ext: string,
  san: string,
  signer: CertPair | null,
  extra: string[] = [],
): Promise<CertPair> {
  const p = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  const args = ['req', '-x509', '-config', path.join(dir, 'openssl.cnf'), '-extensions', ext, ...EC];
  args.push('-keyout', p.key, '-out', p.cert, '-subj', `/CN=${cn}`, '-days', '30');
  if (signer) args.push('-CA', signer.cert, '-CAkey', signer.key);
  await run('openssl', [...args, ...extra], {
    env: { ...process.env, LAB_SAN: san, LAB_CADIR: path.join(dir, 'cadb') },
  });
  return p;
}

/** Creates the CA and all leaves under `dir` (made if missing). */
export async function makePki(dir: string): Promise<LabPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cadir = path.join(dir, 'cadb');
  mkdirSync(cadir, { recursive: true });
  writeFileSync(path.join(dir, 'openssl.cnf'), OPENSSL_CNF);
  writeFileSync(path.join(cadir, 'index.txt'), '');
  writeFileSync(path.join(cadir, 'serial'), '1000\n');
  const ca = await reqCert(dir, 'ca', 'trustplay lab CA', 'ca_ext', 'DNS:unused', null);
  const signed = (name: string, cn: string, san: string) => reqCert(dir, name, cn, 'leaf_ext', san, ca);
  const [registry, wrongName, kube, selfSigned, expired] = await Promise.all([
    signed('registry', 'registry.test', 'DNS:registry.test,DNS:auth.test'),
    signed('wrongname', 'other.test', 'DNS:other.test'),
    signed('kube', 'kube.test', 'DNS:kube.test,IP:127.0.0.1'),
    reqCert(dir, 'selfsigned', 'selfsigned.test', 'leaf_ext', 'DNS:selfsigned.test', null),
    datedLeaf(dir, ca, 'expired', 'expired.test', '20200101000000Z', '20200201000000Z'),
  ]);
  return { ca, registry, selfSigned, expired, wrongName, kube };
}

/**
 * A lab-CA leaf for `cn` with explicit validity dates: `req -x509` can neither back-date nor
 * forward-date, `openssl ca` takes start and end dates.
 */
async function datedLeaf(
  dir: string,
  ca: CertPair,
  name: string,
  cn: string,
  start: string,
  end: string,
): Promise<CertPair> {
  const cnf = path.join(dir, 'openssl.cnf');
  const env = { ...process.env, LAB_SAN: `DNS:${cn}`, LAB_CADIR: path.join(dir, 'cadb') };
  const p = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  await run('openssl', ['req', '-new', '-config', cnf, ...EC, '-keyout', p.key, '-out', csr, '-subj', `/CN=${cn}`], {
    env,
  });
  await run(
    'openssl',
    ['ca', '-batch', '-notext', '-config', cnf, '-extensions', 'leaf_ext', '-cert', ca.cert, '-keyfile', ca.key].concat(
      ['-in', csr, '-out', p.cert, '-startdate', start, '-enddate', end],
    ),
    { env },
  );
  return p;
}

/** The certificates of the TLS failure variants (`useLab({ tlsVariants: true })`), all made here at lab start. */
export interface VariantPki {
  /** An intermediate CA signed by the lab CA. */
  intermediate: CertPair;
  /** `chain.test`: leaf by the intermediate; `cert` is the leaf followed by the intermediate (chain served). */
  chain: CertPair;
  /** `nochain.test`: leaf by the intermediate, served alone. */
  noChain: CertPair;
  /** The intermediate then the lab CA: the CA file that fixes a missing intermediate on the node's side. */
  chainCaBundle: string;
  /** `cnonly.test` named only in the Common Name, no subjectAltName. */
  cnOnly: CertPair;
  /** `sha1.test` signed with ecdsa-with-SHA1 by the lab CA. */
  sha1: CertPair;
  /** `notyet.test`, valid from 2099. */
  notYet: CertPair;
  /** `mtls.test`, a lab-CA leaf; the registry requires a client certificate by the lab CA. */
  mtls: CertPair;
  /** A client certificate (CN=trustplay lab client) signed by the lab CA. */
  client: CertPair;
  /** The intercepting proxy's own CA and the leaf it forges for `proxied.test`. */
  proxyCa: CertPair;
  proxyLeaf: CertPair;
  /** `proxied.test`'s real certificate (lab CA), served behind the proxy. */
  proxied: CertPair;
}

/** Makes the variants' certificates under `dir` (where makePki made the lab CA). */
export async function makeVariantPki(dir: string, ca: CertPair): Promise<VariantPki> {
  const req = (name: string, cn: string, ext: string, san: string, signer: CertPair | null, extra: string[] = []) =>
    reqCert(dir, name, cn, ext, san, signer, extra);
  const [intermediate, proxyCa, cnOnly, sha1, mtls, client, proxied, notYet] = await Promise.all([
    req('intermediate', 'trustplay lab intermediate CA', 'int_ext', 'DNS:unused', ca),
    req('proxy-ca', 'trustplay lab intercepting proxy CA', 'ca_ext', 'DNS:unused', null),
    req('cnonly', 'cnonly.test', 'nosan_ext', 'DNS:unused', ca),
    req('sha1', 'sha1.test', 'leaf_ext', 'DNS:sha1.test', ca, ['-sha1']),
    req('mtls', 'mtls.test', 'leaf_ext', 'DNS:mtls.test', ca),
    req('client', 'trustplay lab client', 'client_ext', 'DNS:unused', ca),
    req('proxied', 'proxied.test', 'leaf_ext', 'DNS:proxied.test', ca),
    datedLeaf(dir, ca, 'notyet', 'notyet.test', '20990101000000Z', '21000101000000Z'),
  ]);
  const [chainLeaf, noChain, proxyLeaf] = await Promise.all([
    req('chain-leaf', 'chain.test', 'leaf_ext', 'DNS:chain.test', intermediate),
    req('nochain', 'nochain.test', 'leaf_ext', 'DNS:nochain.test', intermediate),
    req('proxy-leaf', 'proxied.test', 'leaf_ext', 'DNS:proxied.test', proxyCa),
  ]);
  const chain = { cert: path.join(dir, 'chain.pem'), key: chainLeaf.key };
  writeFileSync(chain.cert, readFileSync(chainLeaf.cert, 'utf8') + readFileSync(intermediate.cert, 'utf8'));
  const chainCaBundle = path.join(dir, 'intermediate-and-ca.pem');
  writeFileSync(chainCaBundle, readFileSync(intermediate.cert, 'utf8') + readFileSync(ca.cert, 'utf8'));
  return {
    intermediate,
    chain,
    noChain,
    chainCaBundle,
    cnOnly,
    sha1,
    notYet,
    mtls,
    client,
    proxyCa,
    proxyLeaf,
    proxied,
  };
}
