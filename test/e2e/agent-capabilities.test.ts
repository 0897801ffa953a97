/**
 * The DaemonSet's capabilities are enough, and each is needed. There is no kubelet or container
 * runtime to start the pod here, so the pod's capability set is reproduced with setpriv(1) (the
 * bounding set the runtime would give the container, nothing inherited), and the node's init with
 * a process in new mount, UTS, IPC, network and PID namespaces (as root, with every capability, as
 * a node's init is). What the runtime adds besides capabilities (its seccomp and AppArmor profiles)
 * is not reproduced: daemonset.yaml's comments say which it needs (RuntimeDefault seccomp allows
 * setns with CAP_SYS_ADMIN; the default AppArmor profile refuses ptrace of the node's init).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { agentConfig } from '../../src/cli/commands/agent.js';
import { parseOptions } from '../../src/cli/options.js';

const DAEMONSET = fileURLToPath(new URL('../../deploy/kubernetes/agent/daemonset.yaml', import.meta.url));
const have = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const unavailable =
  process.getuid?.() !== 0
    ? 'needs root'
    : !have('setpriv') || !have('unshare') || !have('nsenter')
      ? 'needs setpriv, unshare and nsenter (util-linux)'
      : undefined;

interface Container {
  args: string[];
  securityContext: { capabilities: { drop: string[]; add: string[] } };
}
const container = (): Container =>
  (parse(readFileSync(DAEMONSET, 'utf8')) as { spec: { template: { spec: { containers: Container[] } } } }).spec
    .template.spec.containers[0] as Container;

let init: ChildProcess | undefined;
let initPid = 0;
let dir = '';

/** Runs argv with only `caps` in the bounding set (none inherited), as the container would. */
function withCaps(caps: string[], argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const set = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  const r = spawnSync('setpriv', [`--bounding-set=${set}`, '--inh-caps=-all', '--', ...argv], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(Boolean(unavailable))(
  `the agent's capabilities${unavailable ? ` (not run: ${unavailable})` : ''}`,
  () => {
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'trustplay-agent-caps-'));
      // The node's init: a process in namespaces of its own, with every capability.
      init = spawn('unshare', ['-m', '-u', '-i', '-n', '-p', '--fork', 'sleep', '600'], { stdio: 'ignore' });
      for (let i = 0; i < 100 && initPid === 0; i++) {
        try {
          initPid = Number(readFileSync(`/proc/${init.pid}/task/${init.pid}/children`, 'utf8').trim()) || 0;
        } catch {
          initPid = 0;
        }
        if (initPid === 0) await new Promise((r) => setTimeout(r, 50));
      }
      expect(initPid).toBeGreaterThan(0);
    });
    afterAll(() => {
      if (init?.pid !== undefined) process.kill(init.pid, 'SIGKILL');
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it("the agent's host command prefix enters the node's namespaces with exactly SYS_ADMIN, SYS_CHROOT and SYS_PTRACE among the pod's", async () => {
      const c = container();
      expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
      const caps = c.securityContext.capabilities.add;
      process.env.NODE_NAME = 'node-a';
      const config = await agentConfig((await parseOptions(c.args.slice(1))).options).finally(
        () => delete process.env.NODE_NAME,
      );
      // The agent's own prefix (nsenter -t 1 …), aimed at the stand-in init instead of PID 1.
      const prefix = config.prefix.map((a, i) => (a === '1' && config.prefix[i - 1] === '-t' ? String(initPid) : a));
      expect(prefix).not.toEqual(config.prefix);
      const mntOfInit = readlinkSync(`/proc/${initPid}/ns/mnt`);
      expect(mntOfInit).not.toBe(readlinkSync('/proc/self/ns/mnt'));
      const entered = withCaps(caps, [...prefix, 'readlink', '/proc/self/ns/mnt']);
      expect(entered.stderr).toBe('');
      expect(entered.stdout.trim()).toBe(mntOfInit);
      for (const needed of ['SYS_ADMIN', 'SYS_CHROOT', 'SYS_PTRACE']) {
        expect(caps).toContain(needed);
        const r = withCaps(
          caps.filter((x) => x !== needed),
          [...prefix, 'true'],
        );
        expect(r.code, `nsenter worked without ${needed}`).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied|Operation not permitted/);
      }
    });

    it("CHOWN, DAC_OVERRIDE and FOWNER are each what a root write of the node's files needs", () => {
      const caps = container().securityContext.capabilities.add;
      const file = join(dir, 'f');
      const cases: [string, () => void, string][] = [
        // The owner a task asks for.
        ['CHOWN', () => writeFileSync(file, 'x', { mode: 0o644 }), `chown 4321 ${file}`],
        // A root file whose mode lacks the owner's write bit.
        ['DAC_OVERRIDE', () => (writeFileSync(file, 'x'), chmodSync(file, 0o444)), `echo y >> ${file}`],
        // The mode of a file root does not own.
        ['FOWNER', () => (writeFileSync(file, 'x'), chownSync(file, 4321, 4321)), `chmod 600 ${file}`],
      ];
      for (const [cap, setup, command] of cases) {
        expect(caps).toContain(cap);
        rmSync(file, { force: true });
        setup();
        expect(withCaps(caps, ['sh', '-c', command]).code, `${command} with the pod's capabilities`).toBe(0);
        rmSync(file, { force: true });
        setup();
        expect(
          withCaps(
            caps.filter((x) => x !== cap),
            ['sh', '-c', command],
          ).code,
          `${command} worked without ${cap}`,
        ).not.toBe(0);
      }
    });
  },
);
