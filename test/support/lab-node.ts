/** Small helpers to act on a lab node from a test: inside its namespace, over SSH, on its CRI. */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Lab, LabNode } from '../lab/lab.js';

/** Exit code and output of a command. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], input?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 60_000, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs a POSIX sh script inside the node's mount namespace (as the node sees its files). */
export function inNode(node: LabNode, script: string, input?: string): Promise<Outcome> {
  return exec('nsenter', ['-t', String(node.nsPid), '-m', '--', 'sh', '-c', script], input);
}

/** OpenSSH client arguments that log into `node` with the lab key and known_hosts only. */
export function sshArgs(lab: Lab, node: LabNode, identityFile = lab.ssh.identityFile): string[] {
  return [
    '-i',
    identityFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${lab.ssh.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
    '-p',
    String(node.sshPort),
    `${lab.ssh.user}@${node.address}`,
  ];
}

/** Runs a command on `node` over SSH with the OpenSSH client. */
export function overSsh(lab: Lab, node: LabNode, command: string, identityFile?: string): Promise<Outcome> {
  return exec('ssh', [...sshArgs(lab, node, identityFile), command]);
}

/**
 * sha256 of each path (files), or of the sorted listing plus file hashes (directories), or
 * "absent": the machine state a lab must leave untouched.
 */
export function hashPaths(paths: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, h: ReturnType<typeof createHash>): void => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        h.update(`${name}\0`);
        walk(path.join(p, name), h);
      }
    } else if (st.isFile()) {
      h.update(readFileSync(p));
    }
  };
  for (const p of paths) {
    if (!existsSync(p)) {
      out[p] = 'absent';
      continue;
    }
    const h = createHash('sha256');
    walk(p, h);
    out[p] = h.digest('hex');
  }
  return out;
}

/**
 * Pulls `ref` through the CRI socket (as kubelet would): '' on success, else containerd's error
 * message. `fresh` removes the cached image first so the registry is really asked.
 */
export async function criPull(
  socket: string,
  ref: string,
  opts: { fresh?: boolean; timeoutMs?: number } = {},
): Promise<string> {
  const { createCriClient } = await import('../../src/cri/client.js');
  const cri = createCriClient(socket);
  try {
    if (opts.fresh) await cri.removeImage(ref);
    await cri.pullImage(ref, { timeoutMs: opts.timeoutMs ?? 30_000 });
    return '';
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    await cri.close();
  }
}

// Everything fix-registry.yaml may touch on a node.
const MANAGED = ['/etc/containerd/config.toml', '/root/.docker/config.json', '/var/lib/kubelet/config.json'];

/**
 * The files fix-registry.yaml may touch on a node, one line each: `path mode uid:gid sha256` (or
 * `path absent`), then every file under certs.d: what a restore must put back byte for byte.
 */
export async function managedState(node: LabNode): Promise<string> {
  const r = await inNode(
    node,
    `for f in ${MANAGED.join(' ')}; do if [ -e "$f" ]; then echo "$f $(stat -c '%a %u:%g' "$f") $(sha256sum < "$f")"; else echo "$f absent"; fi; done; find /etc/containerd/certs.d -type f 2>/dev/null | sort | while read -r f; do echo "$f $(stat -c '%a %u:%g' "$f") $(sha256sum < "$f")"; done`,
  );
  if (r.code !== 0) throw new Error(`cannot read the managed files of ${node.name}: ${r.stderr}`);
  return r.stdout;
}

/** Writes a playbook that trusts the lab CA on every node (`extra`: more containerd.tls argument lines). */
export function writeTrustCaPlaybook(file: string, extra: string[] = []): string {
  writeFileSync(
    file,
    [
      '- hosts: nodes',
      '  tasks:',
      '    - name: Trust the lab CA',
      '      containerd.tls:',
      '        registry: "{{ registry }}"',
      '        ca: "{{ registry_ca }}"',
      ...extra.map((l) => `        ${l}`),
      '',
    ].join('\n'),
  );
  return file;
}

export { hidePrograms } from '../lab/node.js';

/**
 * Every trust file a runtime's module may touch on `node` (containerd's config.toml, every file
 * under containerd's, Docker Engine's and containers/image's certs.d), each with mode, owner and
 * sha256 (or `absent`): equal strings mean byte-for-byte equal trust.
 */
export async function trustFilesState(node: LabNode): Promise<string> {
  const r = await inNode(
    node,
    `{ echo /etc/containerd/config.toml; find /etc/containerd/certs.d /etc/docker/certs.d /etc/containers/certs.d -type f 2>/dev/null | sort; } | while read -r f; do if [ -e "$f" ]; then echo "$f $(stat -c '%a %u:%g' "$f") $(sha256sum < "$f")"; else echo "$f absent"; fi; done`,
  );
  if (r.code !== 0) throw new Error(`cannot read the trust files of ${node.name}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Waits until `path` exists on every node (a restart command's mark that it began), failing with
 * the run's output when the run ends first or nothing comes within `timeoutMs`.
 */
export async function untilEveryNodeHas(
  nodes: LabNode[],
  path: string,
  run: { done: Promise<{ code: number; stdout: string; stderr: string }> },
  timeoutMs = 120_000,
): Promise<void> {
  let ended: string | undefined;
  run.done.then(
    (r) => (ended = `exit ${r.code}: ${r.stdout}${r.stderr}`),
    (e: unknown) => (ended = String(e)),
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = await Promise.all(nodes.map((n) => inNode(n, `test -e ${path}`)));
    if (seen.every((r) => r.code === 0)) return;
    if (ended !== undefined) throw new Error(`the run ended before ${path} appeared on every node (${ended})`);
    if (Date.now() > deadline) throw new Error(`${path} did not appear on every node within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
