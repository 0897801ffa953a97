/**
 * `npm run demo`: the seed's failure and trustplay's fix, for real, on loopback. Installs the lab's
 * missing Debian packages first (as root on Debian/Ubuntu; elsewhere it prints the command), brings the lab up,
 * shows each node's CRI pull failing with x509, runs playbooks/fix-registry.yaml with live output,
 * shows the pulls succeeding, runs `trustplay check`, and takes the lab down (also on Ctrl-C).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifyPullError } from '../../src/cri/classify.js';
import { createCriClient } from '../../src/cri/client.js';
import { loadInventory } from '../../src/playbook/inventory.js';
import { aptInstallCommand, labDown, labMissingPackages, labPrerequisites, labUp, type Lab } from './lab.js';

const bold = (s: string) => (process.stdout.isTTY && !process.env['NO_COLOR'] ? `\x1b[1m${s}\x1b[22m` : s);
const say = (s = '') => process.stdout.write(s + '\n');

/** The nodes the playbook makes trust the registry: the inventory's `workers`. */
async function workers(lab: Lab): Promise<Lab['nodes']> {
  const inv = await loadInventory(lab.inventoryPath);
  const names = inv.inventory?.groups.get('workers') ?? new Set<string>();
  return lab.nodes.filter((n) => names.has(n.name));
}

async function pulls(lab: Lab): Promise<boolean> {
  let allOk = true;
  for (const node of await workers(lab)) {
    const cri = createCriClient(node.hostSocket);
    try {
      await cri.removeImage(lab.image.ref);
      const { imageRef } = await cri.pullImage(lab.image.ref, { timeoutMs: 60_000 });
      say(`  ${node.name}: pulled ${lab.image.ref} -> ${imageRef.slice(0, 19)}…`);
    } catch (e) {
      allOk = false;
      const c = classifyPullError((e as Error).message);
      say(
        `  ${node.name}: FAILED (${c.class}): ${(e as Error).message.replace(/^.*?: (?=failed to)/, '').slice(0, 160)}…`,
      );
    } finally {
      await cri.close();
    }
  }
  return allOk;
}

function trustplay(args: string[], env: Record<string, string>): Promise<number> {
  say(bold(`\n$ trustplay ${args.join(' ')}`));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      stdio: 'inherit',
      env: { ...process.env, ...env },
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

function debianFamily(): boolean {
  try {
    const osRelease = readFileSync('/etc/os-release', 'utf8');
    return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(osRelease);
  } catch {
    return existsSync('/etc/debian_version');
  }
}

/**
 * A fresh machine's one step: as root on Debian/Ubuntu, install the lab's missing packages (saying
 * which, in one line); anywhere else print the exact command and stop.
 */
function installPackages(): number | undefined {
  const pkgs = labMissingPackages();
  if (pkgs.length === 0) return undefined;
  const command = aptInstallCommand(pkgs);
  if (process.getuid?.() !== 0 || process.platform !== 'linux' || !debianFamily()) {
    process.stderr.write(
      `The demo's lab needs Debian packages that are not installed: ${pkgs.join(' ')}. Install them as root, then run the demo again:\n  sudo sh -c '${command}'\n`,
    );
    return 3;
  }
  say(`Installing the lab's Debian packages: ${pkgs.join(' ')} (${command})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...pkgs],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) {
      process.stderr.write(
        `\`apt-get ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}); fix apt, then run: ${command}\n`,
      );
      return 1;
    }
  }
  return undefined;
}

async function main(): Promise<number> {
  const installed = installPackages();
  if (installed !== undefined) return installed;
  const missing = labPrerequisites();
  if (missing.length) {
    process.stderr.write(
      `The demo runs a real lab (containerd, a registry with a private CA, sshd) and cannot start here:\n  - ${missing.join('\n  - ')}\n`,
    );
    return 3;
  }
  const state = await mkdtemp(join(tmpdir(), 'trustplay-demo-state-'));
  let lab: Lab | undefined;
  const stop = async () => {
    if (lab) await labDown(lab).catch(() => undefined);
    await rm(state, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    say(bold('Bringing up the lab: a registry with a private CA, 3 containerd nodes with sshd, a Kubernetes API…'));
    lab = await labUp({ nodes: 3 });
    say(`  up in ${(lab.upMs / 1000).toFixed(1)}s; inventory ${lab.inventoryPath}`);
    say(bold('\nBefore: every worker pulls through the CRI (as kubelet does)'));
    await pulls(lab);
    const env = { NO_COLOR: process.env['NO_COLOR'] ?? '' };
    const run = await trustplay(
      ['run', 'playbooks/fix-registry.yaml', '-i', lab.inventoryPath, '--state-dir', state],
      env,
    );
    say(bold('\nAfter: the same pulls'));
    const ok = await pulls(lab);
    const check = await trustplay(
      ['check', 'playbooks/fix-registry.yaml', '-i', lab.inventoryPath, '--state-dir', state],
      env,
    );
    say(
      bold(`\nrun exited ${run}, pulls ${ok ? 'succeed' : 'still fail'}, check exited ${check} (0 = in desired state)`),
    );
    return run === 0 && ok && check === 0 ? 0 : 1;
  } finally {
    say(bold('\nTaking the lab down…'));
    await stop();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
