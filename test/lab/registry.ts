/**
 * Distribution registries (Debian `docker-registry`) on loopback: the main TLS one, a basic-auth
 * one, and one per TLS failure class, plus a name whose port nothing listens on.
 */
import http from 'node:http';
import https from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { LabPki } from './certs.js';
import { run, startDetached, waitFor } from './procs.js';

/** Names of the lab's registries; each is reached as `<name>.test:<port>`. */
export type RegistryName = 'registry' | 'auth' | 'selfsigned' | 'expired' | 'wrongname' | 'plain' | 'closed';

/** One registry endpoint as recorded in lab.json. */
export interface LabRegistry {
  /** `host:port` as nodes address it, e.g. `registry.test:24567`. */
  host: string;
  /** DNS name only, e.g. `registry.test`. */
  hostname: string;
  port: number;
  /** Base URL, e.g. `https://registry.test:24567`. */
  url: string;
  scheme: 'https' | 'http';
  /** CA that a correct client must trust for this endpoint (the lab CA; the leaf itself for selfsigned). */
  caFile?: string;
  /** Basic-auth credentials (auth.test only). */
  auth?: { username: string; password: string };
  /** The `docker-registry` process, absent for `closed`. */
  pid?: number;
  /** What this endpoint is for, in a few words. */
  purpose: string;
}

interface Spec {
  name: RegistryName;
  purpose: string;
  tls?: { cert: string; key: string; trust: string };
  storage: 'main' | 'auth';
  auth?: boolean;
}

function specs(pki: LabPki): Spec[] {
  return [
    {
      name: 'registry',
      purpose: 'TLS, leaf signed by the lab CA',
      tls: { ...pki.registry, trust: pki.ca.cert },
      storage: 'main',
    },
    {
      name: 'auth',
      purpose: 'TLS + basic auth (htpasswd, bcrypt)',
      tls: { ...pki.registry, trust: pki.ca.cert },
      storage: 'auth',
      auth: true,
    },
    {
      name: 'selfsigned',
      purpose: 'TLS, self-signed leaf',
      tls: { ...pki.selfSigned, trust: pki.selfSigned.cert },
      storage: 'main',
    },
    {
      name: 'expired',
      purpose: 'TLS, expired leaf signed by the lab CA',
      tls: { ...pki.expired, trust: pki.ca.cert },
      storage: 'main',
    },
    {
      name: 'wrongname',
      purpose: 'TLS, lab-CA leaf for another name (other.test)',
      tls: { ...pki.wrongName, trust: pki.ca.cert },
      storage: 'main',
    },
    { name: 'plain', purpose: 'plain HTTP', storage: 'main' },
  ];
}

/** Basic-auth user of auth.test (a throwaway test secret). */
export const AUTH_USER = 'labuser';

/**
 * Starts every registry. Variants share the main registry's storage read-only, so the same image
 * is there and only TLS (or auth) is what fails; `closed` gets a port nothing listens on.
 */
export async function startRegistries(
  dir: string,
  pki: LabPki,
  ports: Record<RegistryName, number>,
  password: string,
): Promise<Record<RegistryName, LabRegistry>> {
  mkdirSync(dir, { recursive: true });
  const htpasswd = path.join(dir, 'htpasswd');
  const { stdout } = await run('htpasswd', ['-B', '-i', '-n', AUTH_USER], { input: password });
  writeFileSync(htpasswd, stdout, { mode: 0o600 });

  const out = {} as Record<RegistryName, LabRegistry>;
  await Promise.all(
    specs(pki).map(async (s) => {
      const port = ports[s.name];
      const home = path.join(dir, s.name);
      mkdirSync(home, { recursive: true });
      const config: Record<string, unknown> = {
        version: 0.1,
        log: { level: 'warn', accesslog: { disabled: true } },
        storage: {
          filesystem: { rootdirectory: path.join(dir, `storage-${s.storage}`) },
          delete: { enabled: true },
          maintenance: {
            uploadpurging: { enabled: false },
            // Only the owner of a storage writes to it; variants serve it read-only.
            readonly: { enabled: s.storage === 'main' && s.name !== 'registry' },
          },
        },
        http: {
          addr: `127.0.0.1:${port}`,
          ...(s.tls ? { tls: { certificate: s.tls.cert, key: s.tls.key } } : {}),
          headers: { 'X-Content-Type-Options': ['nosniff'] },
        },
        ...(s.auth ? { auth: { htpasswd: { realm: 'trustplay-lab', path: htpasswd } } } : {}),
      };
      const configFile = path.join(home, 'config.yml');
      writeFileSync(configFile, stringify(config));
      const log = path.join(home, 'registry.log');
      const pid = startDetached('/usr/bin/docker-registry', ['serve', configFile], log);
      const hostname = `${s.name}.test`;
      const scheme = s.tls ? 'https' : 'http';
      out[s.name] = {
        host: `${hostname}:${port}`,
        hostname,
        port,
        url: `${scheme}://${hostname}:${port}`,
        scheme,
        ...(s.tls ? { caFile: s.tls.trust } : {}),
        ...(s.auth ? { auth: { username: AUTH_USER, password } } : {}),
        pid,
        purpose: s.purpose,
      };
      await waitFor(`registry ${hostname} (see ${log})`, async () => (await probe(out[s.name]!)) > 0).catch(
        (err: unknown) => {
          const tail = readTail(log);
          throw new Error(`${err instanceof Error ? err.message : String(err)}${tail ? `: ${tail}` : ''}`);
        },
      );
    }),
  );
  const closed = ports.closed;
  out.closed = {
    host: `closed.test:${closed}`,
    hostname: 'closed.test',
    port: closed,
    url: `https://closed.test:${closed}`,
    scheme: 'https',
    purpose: 'nothing listens on this port',
  };
  return out;
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

/** HTTP status of `GET /v2/` on a registry (certificate not checked: this only asks "is it up"). */
function probe(reg: LabRegistry): Promise<number> {
  return new Promise((resolve, reject) => {
    const mod = reg.scheme === 'https' ? https : http;
    const req = mod.request(
      {
        host: '127.0.0.1',
        port: reg.port,
        path: '/v2/',
        method: 'GET',
        rejectUnauthorized: false,
        servername: reg.hostname,
        timeout: 1_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
