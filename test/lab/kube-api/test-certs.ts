import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths and PEM text of a CA plus one leaf certificate it signed. */
export interface TestCerts {
  caCertFile: string;
  caKeyFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
}

/** Options for {@link makeTestCerts}. */
export interface TestCertOptions {
  /** Subject alternative names for the leaf; defaults to 127.0.0.1 and kube.test. */
  dns?: string[];
  ips?: string[];
  /** Common name of the CA; varies it so two labs' CAs are told apart in errors. */
  caName?: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0] ?? ''} failed while making test certificates: ${stderr.trim() || String(err)}`, {
      cause: err,
    });
  }
}

/**
 * Makes a throw-away CA and a server leaf it signed, with `openssl`, inside `dir`.
 * EC P-256 keys keep generation fast on a shared 2-core machine.
 */
export async function makeTestCerts(dir: string, opts: TestCertOptions = {}): Promise<TestCerts> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const dns = opts.dns ?? ['kube.test'];
  const ips = opts.ips ?? ['127.0.0.1'];
  const caName = opts.caName ?? 'trustplay lab test CA';
  const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',');

  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '30',
      '-subj',
      `/CN=${caName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key'], dir);
  await openssl(
    ['req', '-new', '-key', 'server.key', '-subj', `/CN=${dns[0] ?? ips[0] ?? 'server'}`, '-out', 'server.csr'],
    dir,
  );
  // openssl x509 -req does not copy extensions from the CSR, so they go in an extfile.
  await writeFile(
    join(dir, 'server.ext'),
    `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '30',
      '-sha256',
      '-extfile',
      'server.ext',
      '-out',
      'server.crt',
    ],
    dir,
  );
  return {
    caCertFile: join(dir, 'ca.crt'),
    caKeyFile: join(dir, 'ca.key'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    caPem: await readFile(join(dir, 'ca.crt'), 'utf8'),
  };
}
