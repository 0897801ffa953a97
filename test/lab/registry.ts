/**
 * Distribution registries (Debian `docker-registry`) on loopback: the main TLS one, a basic-auth
 * one, and one per TLS failure class, plus a name whose port nothing listens on.
 */
import http from 'node:http';
import https from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import type { LabPki, VariantPki } from './certs.js';
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
  name: RegistryName | VariantName;
  purpose: string;
  tls?: { cert: string; key: string; trust: string; clientCas?: string };
  storage: 'main' | 'auth';
  auth?: boolean;
  /** Listen address (default 127.0.0.1). */
  listen?: '127.0.0.1' | '::1';
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

/** The TLS failure variants a lab starts with `tlsVariants` (issue 20's ground truth), each `<name>.test`. */
export type VariantName = 'chain' | 'nochain' | 'cnonly' | 'sha1' | 'notyet' | 'mtls' | 'proxied';

/** The variants' registries; `proxied` is reached through the intercepting proxy by nodes that use it. */
export const VARIANT_NAMES: VariantName[] = ['chain', 'nochain', 'cnonly', 'sha1', 'notyet', 'mtls', 'proxied'];

function variantSpecs(pki: LabPki, v: VariantPki): Spec[] {
  const t = (pair: { cert: string; key: string }, trust = pki.ca.cert) => ({ ...pair, trust });
  return [
    { name: 'chain', purpose: 'TLS, leaf by an intermediate, chain served', tls: t(v.chain), storage: 'main' },
    {
      name: 'nochain',
      purpose: 'TLS, leaf by an intermediate, served alone',
      tls: t(v.noChain, v.chainCaBundle),
      storage: 'main',
    },
    { name: 'cnonly', purpose: 'TLS, name only in the Common Name (no SAN)', tls: t(v.cnOnly), storage: 'main' },
    { name: 'sha1', purpose: 'TLS, leaf signed with SHA-1', tls: t(v.sha1), storage: 'main' },
    { name: 'notyet', purpose: 'TLS, leaf valid from 2099', tls: t(v.notYet), storage: 'main' },
    {
      name: 'mtls',
      purpose: 'TLS, client certificate required',
      tls: { ...t(v.mtls), clientCas: pki.ca.cert },
      storage: 'main',
    },
    { name: 'proxied', purpose: 'TLS (lab CA), intercepted by the lab proxy', tls: t(v.proxied), storage: 'main' },
  ];
}

/** Starts the TLS failure variants (read-only on the main registry's storage, as the other variants). */
export async function startVariantRegistries(
  dir: string,
  pki: LabPki,
  v: VariantPki,
  ports: Record<VariantName, number>,
): Promise<Record<VariantName, LabRegistry>> {
  const out = {} as Record<VariantName, LabRegistry>;
  await Promise.all(
    variantSpecs(pki, v).map(async (s) => {
      out[s.name as VariantName] = await startOne(dir, s, ports[s.name as VariantName], '');
    }),
  );
  return out;
}

/**
 * The main registry again on `[::1]`, same port, same certificate, its storage read-only: for
 * Docker Engine nodes, where registry.test resolves to ::1. dockerd treats a registry whose name
 * resolves into 127.0.0.0/8 as insecure and verifies nothing, so on 127.0.0.1 it never shows the
 * x509 error a real registry gives; on ::1 it does.
 */
export function startIpv6Registry(dir: string, pki: LabPki, port: number): Promise<LabRegistry> {
  const main = specs(pki).find((s) => s.name === 'registry')!;
  return startOne(dir, { ...main, purpose: 'TLS on [::1] (Docker Engine nodes)', listen: '::1' }, port, '');
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
      out[s.name as RegistryName] = await startOne(dir, s, ports[s.name as RegistryName], htpasswd, password);
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

/** Starts one docker-registry for `s` on `port` and waits until it answers. */
async function startOne(dir: string, s: Spec, port: number, htpasswd: string, password?: string): Promise<LabRegistry> {
  const home = path.join(dir, s.listen === '::1' ? `${s.name}-ipv6` : s.name);
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
        readonly: { enabled: s.storage === 'main' && (s.name !== 'registry' || s.listen === '::1') },
      },
    },
    http: {
      addr: s.listen === '::1' ? `[::1]:${port}` : `127.0.0.1:${port}`,
      ...(s.tls
        ? {
            tls: {
              certificate: s.tls.cert,
              key: s.tls.key,
              ...(s.tls.clientCas ? { clientcas: [s.tls.clientCas] } : {}),
            },
          }
        : {}),
      headers: { 'X-Content-Type-Options': ['nosniff'] },
    },
    ...(s.auth ? { auth: { htpasswd: { realm: 'trustplay-lab', path: htpasswd } } } : {}),
  };
  const configFile = path.join(home, 'config.yml');
  writeFileSync(configFile, stringify(config));
  const log = path.join(home, 'registry.log');
  const pid = startDetached('/usr/bin/docker-registry', ['serve', configFile], log);
  const hostname = `${s.name}.test`;
  const listen = s.listen ?? '127.0.0.1';
  const scheme = s.tls ? 'https' : 'http';
  const reg: LabRegistry = {
    host: `${hostname}:${port}`,
    hostname,
    port,
    url: `${scheme}://${hostname}:${port}`,
    scheme,
    ...(s.tls ? { caFile: s.tls.trust } : {}),
    ...(s.auth && password !== undefined ? { auth: { username: AUTH_USER, password } } : {}),
    pid,
    purpose: s.purpose,
  };
  // A registry that requires a client certificate ends the handshake of a probe without one: any TLS alert is "up".
  const up = async () =>
    (await probe(reg, listen).catch((e: Error) =>
      s.tls?.clientCas && /alert|certificate/i.test(e.message) ? 1 : Promise.reject(e),
    )) > 0;
  await waitFor(`registry ${hostname} (see ${log})`, up).catch((err: unknown) => {
    const tail = readTail(log);
    throw new Error(`${err instanceof Error ? err.message : String(err)}${tail ? `: ${tail}` : ''}`);
  });
  return reg;
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

/** HTTP status of `GET /v2/` on a registry (certificate not checked: this only asks "is it up"). */
function probe(reg: LabRegistry, listen = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const mod = reg.scheme === 'https' ? https : http;
    const req = mod.request(
      {
        host: listen,
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

/**
 * A running registry again on `[::1]`, same port, from its own config.yml (the certificate, auth
 * and storage it has), its storage read-only: for Docker Engine nodes, which reach every registry
 * name on ::1 (see `startIpv6Registry`). The caller stops it (`pid`).
 */
export async function startIpv6Twin(registriesDir: string, reg: LabRegistry): Promise<LabRegistry> {
  const name = reg.hostname.replace(/\.test$/, '');
  const config = parse(readFileSync(path.join(registriesDir, name, 'config.yml'), 'utf8')) as {
    http: { addr: string; tls?: { clientcas?: string[] } };
    storage: { maintenance: { readonly: { enabled: boolean } } };
  };
  config.http.addr = `[::1]:${reg.port}`;
  config.storage.maintenance.readonly.enabled = true;
  const home = path.join(registriesDir, `${name}-ipv6`);
  mkdirSync(home, { recursive: true });
  const configFile = path.join(home, 'config.yml');
  writeFileSync(configFile, stringify(config));
  const log = path.join(home, 'registry.log');
  const pid = startDetached('/usr/bin/docker-registry', ['serve', configFile], log);
  const twin: LabRegistry = { ...reg, pid, purpose: `${reg.purpose}, on [::1]` };
  const up = async () =>
    (await probe(twin, '::1').catch((e: Error) =>
      config.http.tls?.clientcas && /alert|certificate/i.test(e.message) ? 1 : Promise.reject(e),
    )) > 0;
  await waitFor(`registry ${reg.hostname} on [::1] (see ${log})`, up);
  return twin;
}
