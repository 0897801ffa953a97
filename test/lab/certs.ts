/**
 * The lab's PKI, made with the `openssl` command: a private CA and server certificates for the
 * registry and its broken variants, so each TLS failure class can be reproduced for real.
 * ECDSA P-256 keys keep generation instant.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
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

/** Creates the CA and all leaves under `dir` (made if missing). */
export async function makePki(dir: string): Promise<LabPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cnf = path.join(dir, 'openssl.cnf');
  const cadir = path.join(dir, 'cadb');
  mkdirSync(cadir, { recursive: true });
  writeFileSync(cnf, OPENSSL_CNF);
  writeFileSync(path.join(cadir, 'index.txt'), '');
  writeFileSync(path.join(cadir, 'serial'), '1000\n');
  const pair = (name: string): CertPair => ({
    cert: path.join(dir, `${name}.pem`),
    key: path.join(dir, `${name}.key`),
  });
  const env = (san: string): NodeJS.ProcessEnv => ({ ...process.env, LAB_SAN: san, LAB_CADIR: cadir });

  const ca = pair('ca');
  await run(
    'openssl',
    [
      'req',
      '-x509',
      '-config',
      cnf,
      '-extensions',
      'ca_ext',
      ...EC,
      '-keyout',
      ca.key,
      '-out',
      ca.cert,
      '-subj',
      '/CN=trustplay lab CA',
      '-days',
      '30',
    ],
    { env: env('DNS:unused') },
  );

  const signed = async (name: string, cn: string, san: string): Promise<CertPair> => {
    const p = pair(name);
    await run(
      'openssl',
      [
        'req',
        '-x509',
        '-config',
        cnf,
        '-extensions',
        'leaf_ext',
        ...EC,
        '-keyout',
        p.key,
        '-out',
        p.cert,
        '-subj',
        `/CN=${cn}`,
        '-days',
        '30',
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
      ],
      { env: env(san) },
    );
    return p;
  };

  const selfSigned = pair('selfsigned');
  const expired = pair('expired');
  const csr = path.join(dir, 'expired.csr');
  const [registry, wrongName, kube] = await Promise.all([
    signed('registry', 'registry.test', 'DNS:registry.test,DNS:auth.test'),
    signed('wrongname', 'other.test', 'DNS:other.test'),
    signed('kube', 'kube.test', 'DNS:kube.test,IP:127.0.0.1'),
    run(
      'openssl',
      [
        'req',
        '-x509',
        '-config',
        cnf,
        '-extensions',
        'leaf_ext',
        ...EC,
        '-keyout',
        selfSigned.key,
        '-out',
        selfSigned.cert,
        '-subj',
        '/CN=selfsigned.test',
        '-days',
        '30',
      ],
      { env: env('DNS:selfsigned.test') },
    ),
    // `req -x509` cannot back-date; `openssl ca` takes explicit start and end dates.
    run(
      'openssl',
      ['req', '-new', '-config', cnf, ...EC, '-keyout', expired.key, '-out', csr, '-subj', '/CN=expired.test'],
      {
        env: env('DNS:expired.test'),
      },
    ).then(() =>
      run(
        'openssl',
        [
          'ca',
          '-batch',
          '-notext',
          '-config',
          cnf,
          '-extensions',
          'leaf_ext',
          '-cert',
          ca.cert,
          '-keyfile',
          ca.key,
          '-in',
          csr,
          '-out',
          expired.cert,
          '-startdate',
          '20200101000000Z',
          '-enddate',
          '20200201000000Z',
        ],
        { env: env('DNS:expired.test') },
      ),
    ),
  ]);
  return { ca, registry, selfSigned, expired, wrongName, kube };
}
