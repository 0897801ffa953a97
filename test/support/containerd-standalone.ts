// A throw-away containerd (CRI plugin on) plus the bits a pull needs around it — a test CA, docker
// registries, a DNS server that answers "no such name" — all on 127.0.0.0/8 and in temp dirs.
// containerd runs in its own mount namespace with a private /etc/hosts and /etc/resolv.conf, so
// registry names resolve to loopback without touching the real files and no lookup leaves the box.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const run = promisify(execFile);

/** Waits for `check` to return true, polling; throws `what` after `timeoutMs`. */
async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// PKI

/** A test CA that issues server certificates for names. */
export interface TestCa {
  caCertPath: string;
  caCertPem: string;
  /** Issues a cert for `dnsNames` (first is the CN); `expired` back-dates it so it is already invalid. */
  issue(name: string, dnsNames: string[], opts?: { expired?: boolean }): Promise<{ certPath: string; keyPath: string }>;
}

/** Creates a CA (EC P-256) in `dir`. */
export async function createTestCa(dir: string, cn = 'trustplay test CA'): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caCertPath = join(dir, 'ca.crt');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    caKey,
    '-out',
    caCertPath,
    '-days',
    '3',
    '-subj',
    `/CN=${cn}`,
  ]);
  const caCertPem = await readFile(caCertPath, 'utf8');
  return {
    caCertPath,
    caCertPem,
    async issue(name, dnsNames, opts = {}) {
      const keyPath = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certPath = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      await writeFile(
        ext,
        `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
      );
      await run('openssl', [
        'req',
        '-new',
        ...ec,
        '-keyout',
        keyPath,
        '-out',
        csr,
        '-subj',
        `/CN=${dnsNames[0] ?? name}`,
      ]);
      // -days -1 puts notAfter a day before notBefore (= now): an already-expired certificate
      // without needing a fake clock.
      const days = opts.expired ? '-1' : '3';
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caCertPath,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-out',
        certPath,
        '-days',
        days,
        '-extfile',
        ext,
      ]);
      return { certPath, keyPath };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Registry

/** A running `docker-registry` (distribution 2.x). */
export interface TestRegistry {
  port: number;
  tls: boolean;
  stop(): Promise<void>;
}

/** Starts /usr/bin/docker-registry on 127.0.0.1 (a free port), optionally with TLS and htpasswd. */
export async function startRegistry(opts: {
  dir: string;
  /** Storage shared between registries that should serve the same content. */
  storageDir?: string;
  tls?: { certPath: string; keyPath: string };
  /** htpasswd file (bcrypt) to require basic auth. */
  htpasswdPath?: string;
}): Promise<TestRegistry> {
  await mkdir(opts.dir, { recursive: true });
  const storage = opts.storageDir ?? join(opts.dir, 'storage');
  await mkdir(storage, { recursive: true });
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    '  addr: 127.0.0.1:0',
  ];
  if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.certPath}`, `    key: ${opts.tls.keyPath}`);
  if (opts.htpasswdPath)
    lines.push('auth:', '  htpasswd:', '    realm: trustplay-test', `    path: ${opts.htpasswdPath}`);
  const configPath = join(opts.dir, 'config.yml');
  await writeFile(configPath, lines.join('\n') + '\n');

  const child = spawn('/usr/bin/docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  let port = 0;
  try {
    await until(
      () => {
        if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log.slice(-2000)}`);
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
        if (m?.[1]) port = Number(m[1]);
        return port > 0;
      },
      15_000,
      () => `docker-registry did not start listening: ${log.slice(-2000)}`,
    );
  } catch (err) {
    await stopProcess(child);
    throw err;
  }
  return { port, tls: Boolean(opts.tls), stop: () => stopProcess(child) };
}

/** Writes an htpasswd file with one bcrypt user (apache2-utils). */
export async function writeHtpasswd(path: string, user: string, password: string): Promise<void> {
  const { stdout } = await run('htpasswd', ['-Bbn', user, password]);
  await writeFile(path, stdout);
}

/** A tiny single-layer image, pushed over HTTPS to a registry that trusts nobody yet. */
export interface PushedImage {
  /** repository:tag as pushed (without the registry host). */
  ref: string;
  /** sha256 digest of the manifest (what a repo digest shows). */
  manifestDigest: string;
  /** sha256 digest of the config blob (containerd's CRI image id). */
  configDigest: string;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** One ustar entry plus the two zero blocks that end an archive: enough for a one-file layer. */
function tarOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  header.write(
    Math.floor(Date.UTC(2024, 0, 1) / 1000)
      .toString(8)
      .padStart(11, '0') + '\0',
    136,
    12,
    'ascii',
  );
  header.write('        ', 148, 8, 'ascii');
  header.write('0', 156, 1, 'ascii');
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512, 0);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024, 0)]);
}

/**
 * Pushes a one-file image to `https://<servername>:<port>` connecting to 127.0.0.1 (so no name
 * resolution is needed on the controller), trusting `caPem`.
 */
export async function pushTinyImage(opts: {
  port: number;
  servername: string;
  caPem: string;
  repository: string;
  tag: string;
  content?: string;
  basicAuth?: { user: string; password: string };
}): Promise<PushedImage> {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
  const layerTar = tarOneFile('hello.txt', Buffer.from(opts.content ?? 'hello from trustplay\n'));
  const layer = gzipSync(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Cmd: ['/hello.txt'] },
      rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: {
        mediaType: 'application/vnd.docker.container.image.v1+json',
        size: config.length,
        digest: sha256(config),
      },
      layers: [
        { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) },
      ],
    }),
  );

  const req = (method: string, path: string, body?: Buffer, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>(
      (resolve, reject) => {
        const auth = opts.basicAuth
          ? {
              Authorization: `Basic ${Buffer.from(`${opts.basicAuth.user}:${opts.basicAuth.password}`).toString('base64')}`,
            }
          : {};
        const r = httpsRequest(
          {
            host: '127.0.0.1',
            port: opts.port,
            servername: opts.servername,
            ca: opts.caPem,
            method,
            path,
            headers: { ...auth, ...headers, 'Content-Length': String(body?.length ?? 0) },
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
          },
        );
        r.on('error', reject);
        r.end(body);
      },
    );

  for (const blob of [layer, config]) {
    const start = await req('POST', `/v2/${opts.repository}/blobs/uploads/`);
    const location = start.headers['location'];
    if (start.status !== 202 || typeof location !== 'string') {
      throw new Error(`registry refused the upload (${start.status}): ${start.body}`);
    }
    const url = new URL(location, `https://${opts.servername}:${opts.port}`);
    url.searchParams.set('digest', sha256(blob));
    const put = await req('PUT', url.pathname + url.search, blob, { 'Content-Type': 'application/octet-stream' });
    if (put.status !== 201) throw new Error(`blob upload failed (${put.status}): ${put.body}`);
  }
  const put = await req('PUT', `/v2/${opts.repository}/manifests/${opts.tag}`, manifest, {
    'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json',
  });
  if (put.status !== 201) throw new Error(`manifest upload failed (${put.status}): ${put.body}`);
  return { ref: `${opts.repository}:${opts.tag}`, manifestDigest: sha256(manifest), configDigest: sha256(config) };
}

// ---------------------------------------------------------------------------------------------
// Network stand-ins

/** A DNS server on a loopback address that answers every query NXDOMAIN (Go: "no such host"). */
export interface NxdomainDns {
  address: string;
  stop(): Promise<void>;
}

/** Binds UDP port 53 on a random 127.53.x.y (resolv.conf cannot name a port) and answers NXDOMAIN. */
export async function startNxdomainDns(): Promise<NxdomainDns> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const address = `127.53.${Math.floor(Math.random() * 250) + 1}.${Math.floor(Math.random() * 250) + 1}`;
    const sock: UdpSocket = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(53, address, () => resolve(true));
    });
    if (!ok) {
      sock.close();
      continue;
    }
    sock.on('message', (msg, rinfo) => {
      if (msg.length < 12) return;
      // Echo id and question; set QR, keep RD, RA=1, RCODE=3 (NXDOMAIN); no answers.
      const reply = Buffer.from(msg);
      reply[2] = 0x80 | ((msg[2] ?? 0) & 0x01);
      reply[3] = 0x80 | 0x03;
      reply.writeUInt16BE(0, 6);
      reply.writeUInt16BE(0, 8);
      reply.writeUInt16BE(0, 10);
      sock.send(reply.subarray(0, questionEnd(msg)), rinfo.port, rinfo.address);
    });
    return { address, stop: () => new Promise<void>((resolve) => sock.close(() => resolve())) };
  }
  throw new Error('could not bind a test DNS server on 127.53.0.0/16 port 53');
}

/** Offset just past the first question, so the reply drops any EDNS additional records. */
function questionEnd(msg: Buffer): number {
  let i = 12;
  while (i < msg.length && msg[i] !== 0) i += (msg[i] ?? 0) + 1;
  return Math.min(msg.length, i + 1 + 4);
}

/** A TCP listener that accepts and then says nothing (a firewall that black-holes the TLS handshake). */
export async function startSilentServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, read, released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof addr === 'object' && addr ? addr.port : 1;
}

// ---------------------------------------------------------------------------------------------
// containerd

/** A containerd started for one test file. */
export interface StandaloneContainerd {
  /** The gRPC socket (serves the CRI). */
  socket: string;
  /** Temp dir holding config, root, state, certs.d and the log. */
  dir: string;
  /** `config_path` of the CRI registry: write `<host:port>/hosts.toml` here (no restart needed). */
  certsDir: string;
  pid: number;
  /** containerd's output so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts containerd 1.6 with the CRI plugin in a private mount namespace. `hosts` maps names to
 * loopback addresses for its /etc/hosts; `nameserver` goes into its /etc/resolv.conf (use
 * startNxdomainDns so lookups of other names fail locally instead of leaving the machine).
 */
export async function startContainerd(opts: {
  hosts?: Record<string, string>;
  nameserver: string;
}): Promise<StandaloneContainerd> {
  const dir = await mkdtemp(join(tmpdir(), 'tp-ctrd-'));
  const certsDir = join(dir, 'certs.d');
  await mkdir(certsDir);
  await mkdir(join(dir, 'cni', 'net.d'), { recursive: true });
  const socket = join(dir, 'containerd.sock');
  // Every path containerd would otherwise take from its defaults (/var/lib, /run, /opt, /etc/cni)
  // points into the temp dir, so the machine's own containerd state is never touched.
  const config = `version = 2
root = "${dir}/root"
state = "${dir}/state"

[grpc]
  address = "${socket}"

[ttrpc]
  address = "${socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.invalid/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni/bin"
    conf_dir = "${dir}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${certsDir}"
`;
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, config);
  const hostsPath = join(dir, 'hosts');
  const hostLines = Object.entries(opts.hosts ?? {}).map(([name, ip]) => `${ip} ${name}`);
  await writeFile(hostsPath, ['127.0.0.1 localhost', ...hostLines].join('\n') + '\n');
  const resolvPath = join(dir, 'resolv.conf');
  await writeFile(resolvPath, `nameserver ${opts.nameserver}\noptions timeout:1 attempts:1\n`);

  // unshare and sh both exec, so the pid we hold is containerd's. Proxy variables are dropped so
  // a pull can only go where /etc/hosts says.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/_proxy$/i.test(k)) env[k] = v;
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && exec containerd --config "$3"',
      'sh',
      hostsPath,
      resolvPath,
      configPath,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await until(
      () => {
        if (child.exitCode !== null) throw new Error(`containerd exited (${child.exitCode}): ${log.slice(-3000)}`);
        return (
          log.includes(`msg=serving... address=${socket}\n`) &&
          log.includes('loading plugin \\"io.containerd.grpc.v1.cri\\"')
        );
      },
      30_000,
      () => `containerd did not start serving: ${log.slice(-3000)}`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  if (child.pid === undefined) throw new Error('containerd has no pid');
  return { socket, dir, certsDir, pid: child.pid, log: () => log, stop };
}

/**
 * Makes the standalone containerd trust `caPath` for `hostPort` (certs.d/<host:port>/hosts.toml).
 * `ca` sits at the top level, beside `server`: containerd falls back to `server` after every
 * `[host]` entry, so a CA set only under `[host."https://same"]` leaves the fallback untrusted and
 * a 404 from the host entry surfaces as the fallback's "x509: unknown authority" instead. The empty
 * `[host]` table works around containerd#10027 (1.6/1.7 reject a file with no host tree).
 */
export async function trustCaFor(ctr: StandaloneContainerd, hostPort: string, caPath: string): Promise<void> {
  const d = join(ctr.certsDir, hostPort);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'hosts.toml'), `server = "https://${hostPort}"\nca = "${caPath}"\n\n[host]\n`);
}
