/**
 * Records what each runtime really says when a pull fails, for every failure the lab can produce:
 * containerd's CRI (1.6, 1.7, 2.1: the text image.pull.verify classifies, CriError details), Docker
 * Engine (dockerd through POST /images/create: test/support/docker-api.ts `dockerPull`'s text) and
 * containers/image (`skopeo inspect --raw docker://REF` on the node, no flags: its stderr, trimmed).
 * scripts/gen-pull-error-fixtures.ts writes the results to test/fixtures/pull-errors/ (or, with
 * --check, compares); test/e2e/pull-error-fixtures.test.ts runs the same check in CI.
 *
 * The lab it needs (`PULL_ERRORS_LAB`): node1 containerd 1.6 + dockerd, node2 1.7, node3 2.1, the
 * TLS variants. What this adds to that lab, and takes away again at the end:
 *   - every registry a second time on [::1] (same port, certificate, auth, storage read-only), and
 *     node1's /etc/hosts maps every lab name to ::1 only: dockerd verifies nothing for a registry
 *     that resolves into 127.0.0.0/8 (docker-engine.ts), so on 127.0.0.1 it would show no x509
 *     error at all;
 *   - nottls.test: a TCP service that is not TLS (it greets with an SSH banner, as sshd does), and
 *     silent.test, one that accepts and never answers (each runtime's TLS handshake timeout), on
 *     127.0.0.1 and ::1;
 *   - nohost.test is in no /etc/hosts: the node's resolver (loopback only, nothing answers) fails it;
 *   - the intercepting proxy's drop-in is removed from every node's containerd (the variants start
 *     with it): a pull straight to the registry is the text to record;
 *   - the lab CA trusted for the registries whose defect lies beyond trust: containerd.tls (one
 *     CLI run) for containerd, certs.d/<host:port>/ca.crt for dockerd and containers/image.
 * node1's containerd reaches the registries on ::1 too (its refused connection says [::1]).
 * Texts are made stable: ports become `<port>`, timestamps `<time>`, the lab directory `<lab>`.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { PullFailureClass } from '../../src/cri/classify.js';
import { CriError, createCriClient } from '../../src/cri/client.js';
import { trustplay } from '../support/cli.js';
import { dockerPull, dockerVersion } from '../support/docker-api.js';
import { inNode } from '../support/lab-node.js';
import type { Lab, LabNode, LabRegistry } from './lab.js';
import { freePort, stopPid } from './procs.js';
import { startIpv6Twin } from './registry.js';

/** One recorded failure: what the lab set up, the class it must be read as, and the runtime's text. */
export interface PullErrorEntry {
  variant: string;
  expectedClass: PullFailureClass;
  /** The runtime's text with ports, times and lab paths replaced by placeholders. */
  raw?: string;
  /** Why this runtime cannot be made to produce it here (then there is no `raw`). */
  unproducible?: string;
}

/** The lab the recorder needs (`labUp` / `useLab` options). */
export const PULL_ERRORS_LAB = {
  nodes: 3,
  containerd: ['1.6', '1.7', '2.1'] as ('1.6' | '1.7' | '2.1')[],
  tlsVariants: true,
  docker: [true, false, false],
  // skopeo runs on node2 (lab nodes hide it unless asked for).
  containers: [false, true, false],
};

interface Case {
  variant: string;
  expectedClass: PullFailureClass;
  /** Registry name in the lab (`registries` or `variants.registries`), or a name the recorder serves. */
  registry: string;
  /** The node trusts the lab CA for it (the defect lies beyond trust). */
  trusted?: boolean;
  /** Repository and tag, default the lab image's. */
  repo?: string;
  tag?: string;
}

const CASES: Case[] = [
  { variant: 'unknown CA', expectedClass: 'unknown-authority', registry: 'registry' },
  { variant: 'self-signed leaf', expectedClass: 'unknown-authority', registry: 'selfsigned' },
  {
    variant: 'missing intermediate (leaf served without its intermediate)',
    expectedClass: 'unknown-authority',
    registry: 'nochain',
    trusted: true,
  },
  { variant: 'name mismatch', expectedClass: 'name-mismatch', registry: 'wrongname', trusted: true },
  { variant: 'CN only, no SAN', expectedClass: 'cn-only', registry: 'cnonly', trusted: true },
  { variant: 'SHA-1 signature', expectedClass: 'sha1-signature', registry: 'sha1', trusted: true },
  { variant: 'expired', expectedClass: 'expired', registry: 'expired', trusted: true },
  { variant: 'not yet valid', expectedClass: 'not-yet-valid', registry: 'notyet', trusted: true },
  {
    variant: 'client certificate required, none configured',
    expectedClass: 'client-cert-required',
    registry: 'mtls',
    trusted: true,
  },
  { variant: 'plain HTTP', expectedClass: 'plain-http', registry: 'plain' },
  { variant: 'not TLS (an SSH banner)', expectedClass: 'not-tls', registry: 'nottls' },
  {
    variant: 'basic auth, no credentials',
    expectedClass: 'unauthorized',
    registry: 'auth',
    trusted: true,
  },
  { variant: 'missing tag', expectedClass: 'not-found', registry: 'chain', trusted: true, tag: 'no-such-tag' },
  {
    variant: 'missing repository',
    expectedClass: 'not-found',
    registry: 'chain',
    trusted: true,
    repo: 'tp/no-such-repo',
  },
  { variant: 'refused port (nothing listens)', expectedClass: 'unreachable', registry: 'closed' },
  { variant: 'unknown name (no DNS answer)', expectedClass: 'dns', registry: 'nohost' },
  { variant: 'TLS handshake never answered', expectedClass: 'timeout', registry: 'silent' },
];

/** One runtime on one node: its fixture file's name and how it pulls. */
interface Runtime {
  file: string;
  pull: (ref: string) => Promise<string>;
}

/** Every registry of the lab by short name. */
function labRegistries(lab: Lab): Map<string, LabRegistry> {
  const all = [...Object.values(lab.registries), ...Object.values(lab.variants?.registries ?? {})];
  return new Map(all.map((r) => [r.hostname.replace(/\.test$/, ''), r]));
}

/** What a CRI pull's failure is to image.pull.verify (the same choice as image-pull-verify.ts). */
async function criPullRaw(node: LabNode, ref: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const cri = createCriClient(node.hostSocket);
    try {
      await cri.pullImage(ref, { timeoutMs: 60_000 });
      return '';
    } catch (e) {
      if (!(e instanceof CriError)) throw e;
      // A CRI that is not answering (14) is no answer about the registry: ask once more.
      if (e.code === 14 && attempt === 1) {
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      return e.code === 4 ? e.message : e.details || e.message;
    } finally {
      await cri.close();
    }
  }
}

/**
 * A TCP service on 127.0.0.1 and ::1 (same port) that is no registry: `ssh` greets with an SSH
 * banner (not TLS), `silent` accepts and never answers (a TLS handshake that times out).
 */
async function startTcpService(kind: 'ssh' | 'silent'): Promise<{ port: number; close: () => Promise<void> }> {
  const port = await freePort();
  const open = new Set<net.Socket>();
  const greet = (s: net.Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => undefined);
    if (kind === 'ssh') s.end('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
  };
  const servers = [net.createServer(greet), net.createServer(greet)];
  await Promise.all(
    servers.map(
      (srv, i) =>
        new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(port, i === 0 ? '127.0.0.1' : '::1', resolve);
        }),
    ),
  );
  return {
    port,
    close: () => {
      for (const s of open) s.destroy();
      return Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined);
    },
  };
}

/** `text` with what changes from lab to lab replaced: ports, timestamps, the lab directory. */
export function stabilise(text: string, ports: number[], labDir: string): string {
  let out = text.split(labDir).join('<lab>');
  out = out.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)/g, '<time>');
  // The local end of a connection (`read udp 127.0.0.1:55006->127.0.0.1:53`): an ephemeral port.
  out = out.replace(/((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-f:]+\]):\d+->/g, '$1:<port>->');
  // Go's HTTP transport prefixes a TLS alert with `readLoopPeekFailLocked: ` when its read loop
  // sees the alert before the request is written, and not otherwise: which one wins is a race
  // (containerd 1.6 gave both for the same mTLS case in two CI runs). The classifier's tests hold
  // the prefixed form; the fixture keeps the text without it.
  out = out.replace(/readLoopPeekFailLocked: /g, '');
  for (const p of [...new Set(ports)].sort((a, b) => b - a))
    out = out.replace(new RegExp(`:${p}(?!\\d)`, 'g'), ':<port>');
  return out;
}

/** containerd-1.6, docker-20.10, skopeo-1.9: runtime and major.minor of what ran. */
function fileName(runtime: string, version: string): string {
  const mm = /^(\d+\.\d+)/.exec(version)?.[1];
  if (!mm) throw new Error(`${runtime} reported a version without major.minor: ${version}`);
  return `${runtime}-${mm}.json`;
}

/**
 * Records every case on every runtime of `lab` (`PULL_ERRORS_LAB`), returns the fixture files'
 * contents by name, and leaves the lab as it found it (twins, banner service and trust removed,
 * node1's /etc/hosts and the proxy drop-ins put back).
 */
export async function recordPullErrors(
  lab: Lab,
  log: (s: string) => void = () => undefined,
): Promise<Map<string, PullErrorEntry[]>> {
  const [dockerNode, ...others] = lab.nodes;
  if (!dockerNode?.docker || !lab.variants || others.length === 0)
    throw new Error('the pull-error recorder needs a lab with TLS variants and a Docker Engine node first');
  const started = Date.now();
  const regs = labRegistries(lab);
  const work = mkdtempSync(path.join(os.tmpdir(), 'tp-pull-errors-'));
  const undo: (() => Promise<unknown>)[] = [];
  try {
    // The names served on ::1 for dockerd, the SSH-banner service, and node1's /etc/hosts.
    const registriesDir = path.join(lab.dir, 'registries');
    const twins = await Promise.all(
      [...regs.values()]
        .filter((r) => r.pid && r.hostname !== lab.registries.registry.hostname)
        .map((r) => startIpv6Twin(registriesDir, r)),
    );
    // In lab.json too, so a recorder that dies here leaves them to `labDown` (it checks each pid's name).
    const labFile = path.join(lab.dir, 'lab.json');
    const recordedLab = JSON.parse(readFileSync(labFile, 'utf8')) as Lab;
    recordedLab.processes.push(
      ...twins.map((t) => ({ pid: t.pid!, comm: 'docker-registry', what: `registry ${t.hostname} on [::1]` })),
    );
    writeFileSync(labFile, `${JSON.stringify(recordedLab, null, 2)}\n`, { mode: 0o600 });
    undo.push(() => Promise.all(twins.map((t) => stopPid(t.pid!, 'docker-registry'))));
    const [notTls, silent] = await Promise.all([startTcpService('ssh'), startTcpService('silent')]);
    undo.push(notTls.close, silent.close);
    const names = [...regs.values()].map((r) => r.hostname);
    const hostsFile = dockerNode.files['/etc/hosts'];
    const hostsBefore = readFileSync(hostsFile, 'utf8');
    undo.push(() => Promise.resolve(writeFileSync(hostsFile, hostsBefore)));
    writeFileSync(
      hostsFile,
      `${hostsBefore
        .split('\n')
        .map((l) =>
          l.startsWith('127.0.0.1 ')
            ? l
                .split(' ')
                .filter((w) => !names.includes(w))
                .join(' ')
            : l,
        )
        .filter((l) => l.trim() !== '127.0.0.1' && !/^::1 \S+\.test$/.test(l))
        .join('\n')
        .trimEnd()}\n::1 ${[...names, 'nottls.test', 'silent.test'].join(' ')}\n`,
    );
    for (const n of others) {
      const f = n.files['/etc/hosts'];
      const before = readFileSync(f, 'utf8');
      undo.push(() => Promise.resolve(writeFileSync(f, before)));
      writeFileSync(f, `${before.trimEnd()}\n127.0.0.1 nottls.test silent.test\n`);
    }

    // containerd straight to the registries, not through the lab's intercepting proxy.
    const dropIn = lab.variants.proxy.dropIn;
    const proxyConf = readFileSync(path.join(dockerNode.files['/run'], dropIn.replace(/^\/run\//, '')), 'utf8');
    for (const n of lab.nodes) {
      const r = await inNode(n, `rm -f ${dropIn} && systemctl restart containerd`);
      if (r.code !== 0) throw new Error(`${n.name}: removing the proxy drop-in failed: ${r.stderr}`);
      undo.push(async () => {
        writeFileSync(path.join(n.files['/run'], dropIn.replace(/^\/run\//, '')), proxyConf);
        await inNode(n, 'systemctl restart containerd');
      });
    }

    // The lab CA trusted where the defect lies beyond trust: containerd by containerd.tls itself
    // (config_path, hosts.toml, the restart); Docker Engine and containers/image read
    // certs.d/<host:port>/ca.crt at every pull, the file docker.tls and containers.tls write,
    // written here directly (a CLI task per registry and node costs ~1 s on this machine).
    const trusted = [...new Set(CASES.filter((c) => c.trusted).map((c) => regs.get(c.registry)!.host))];
    const playbook = path.join(work, 'trust.yaml');
    writeFileSync(
      playbook,
      [
        '- hosts: all',
        '  tasks:',
        ...trusted.map((r) => `    - containerd.tls: { registry: "${r}", ca: "${lab.ca}", verify_ca: false }`),
        '',
      ].join('\n'),
    );
    const caPem = readFileSync(lab.ca, 'utf8');
    const certsDirs = trusted.flatMap((r) => [`/etc/docker/certs.d/${r}`, `/etc/containers/certs.d/${r}`]);
    const [trust] = await Promise.all([
      trustplay(['run', playbook, '-i', lab.inventoryPath, '--state-dir', path.join(work, 'state')]),
      ...lab.nodes.map(async (n) => {
        const [first, ...rest] = certsDirs;
        const r = await inNode(
          n,
          [
            `mkdir -p '${first}' && cat > '${first}/ca.crt'`,
            ...rest.map((d) => `mkdir -p '${d}' && cp '${first}/ca.crt' '${d}/ca.crt'`),
          ].join(' && '),
          caPem,
        );
        if (r.code !== 0) throw new Error(`${n.name}: writing certs.d failed: ${r.stderr}`);
      }),
    ]);
    if (trust.code !== 0)
      throw new Error(`trusting the lab CA failed (exit ${trust.code}): ${trust.stdout}${trust.stderr}`);
    undo.push(() =>
      Promise.all(
        lab.nodes.map((n) =>
          inNode(n, `rm -rf ${[...certsDirs, ...trusted.map((r) => `/etc/containerd/certs.d/${r}`)].join(' ')}`),
        ),
      ),
    );
    log(`set up in ${Date.now() - started} ms`);

    const containerdVersion = (n: LabNode) => n.containerd.version;
    const skopeo = await inNode(others[0]!, 'skopeo --version');
    const skopeoVersion = /version (\S+)/.exec(skopeo.stdout)?.[1] ?? '';
    const runtimes: Runtime[] = [
      ...lab.nodes.map((n) => ({
        file: fileName('containerd', containerdVersion(n)),
        pull: (ref: string) => criPullRaw(n, ref),
      })),
      {
        file: fileName('docker', await dockerVersion(dockerNode.docker.hostSocket)),
        pull: (ref: string) => dockerPull(dockerNode.docker!.hostSocket, ref),
      },
      {
        file: fileName('skopeo', skopeoVersion),
        pull: async (ref: string) => {
          const r = await inNode(others[0]!, `skopeo inspect --raw 'docker://${ref}'`);
          return r.code === 0 ? '' : r.stderr.trim() || `skopeo exited ${r.code} and said nothing`;
        },
      },
    ];

    const ports = [
      ...[...regs.values()].map((r) => r.port),
      notTls.port,
      silent.port,
      ...lab.nodes.map((n) => n.sshPort),
      lab.variants.proxy.port,
    ];
    const refOf = (c: Case): string => {
      const host =
        c.registry === 'nottls'
          ? `nottls.test:${notTls.port}`
          : c.registry === 'silent'
            ? `silent.test:${silent.port}`
            : c.registry === 'nohost'
              ? 'nohost.test:5000'
              : regs.get(c.registry)!.host;
      return `${host}/${c.repo ?? lab.image.repo}:${c.tag ?? lab.image.tag}`;
    };
    const out = new Map<string, PullErrorEntry[]>();
    await Promise.all(
      runtimes.map(async (rt) => {
        const entries: PullErrorEntry[] = [];
        for (const c of CASES) {
          const raw = await rt.pull(refOf(c));
          if (raw === '') throw new Error(`${rt.file}: ${c.variant}: the pull of ${refOf(c)} succeeded`);
          entries.push({ variant: c.variant, expectedClass: c.expectedClass, raw: stabilise(raw, ports, lab.dir) });
        }
        out.set(rt.file, entries);
      }),
    );
    log(`recorded ${CASES.length} cases on ${runtimes.length} runtimes in ${Date.now() - started} ms`);
    return new Map([...out.entries()].sort(([a], [b]) => a.localeCompare(b)));
  } finally {
    for (const u of undo.reverse()) await u().catch((e: unknown) => log(`putting the lab back: ${String(e)}`));
    log(`lab put back at ${Date.now() - started} ms`);
    rmSync(work, { recursive: true, force: true });
  }
}

/** The fixtures' directory. */
export const PULL_ERRORS_DIR = new URL('../fixtures/pull-errors/', import.meta.url);

/** A fixture file's text (stable JSON, one entry per case). */
export function fixtureText(entries: PullErrorEntry[]): string {
  return `${JSON.stringify(entries, null, 2)}\n`;
}

/** Differences between what was recorded and the committed files, one line each. */
export function pullErrorsDrift(recorded: Map<string, string>, dir: string): string[] {
  const drift: string[] = [];
  const committed = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  for (const f of committed)
    if (!recorded.has(f)) drift.push(`${f}: committed, but no runtime of that version ran here`);
  for (const [f, text] of recorded) {
    const path = `${dir}/${f}`;
    if (!existsSync(path)) {
      drift.push(`${f}: recorded, not committed`);
      continue;
    }
    const want = JSON.parse(readFileSync(path, 'utf8')) as { variant: string; raw?: string }[];
    const got = JSON.parse(text) as { variant: string; raw?: string }[];
    if (text === readFileSync(path, 'utf8')) continue;
    for (const g of got) {
      const w = want.find((x) => x.variant === g.variant);
      if (!w) drift.push(`${f}: ${g.variant}: not committed`);
      else if (JSON.stringify(w) !== JSON.stringify(g))
        drift.push(`${f}: ${g.variant}: committed ${JSON.stringify(w.raw)}, now ${JSON.stringify(g.raw)}`);
    }
    for (const w of want)
      if (!got.some((g) => g.variant === w.variant)) drift.push(`${f}: ${w.variant}: no longer recorded`);
    if (!drift.some((d) => d.startsWith(`${f}:`))) drift.push(`${f}: differs in form (regenerate it)`);
  }
  return drift;
}
