/**
 * Vitest helpers for suites that run against the lab: `describeLab` decides whether the suite can
 * run (root and the lab's packages) and says why when it cannot, and `useLab` brings a lab up for
 * the suite (or reuses the one named by TRUSTPLAY_LAB_DIR) and takes it down afterwards.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  type Lab,
  type NodeLogin,
  LAB_SUDO_PASSWORD_ENV,
  labDown,
  labPrerequisites,
  labState,
  labUp,
} from '../lab/lab.js';
import type { ContainerdVersionKey } from '../lab/containerd-versions.js';
import type { NodeFlavour } from '../lab/node.js';

/** Why lab suites cannot run here, or undefined when they can. */
export function labSkipReason(): string | undefined {
  const missing = labPrerequisites();
  return missing.length > 0 ? missing.join('; ') : undefined;
}

/**
 * `describe` for a lab suite. Without the prerequisites it is reported as skipped with the
 * reason in its title; in CI (CI=true) it fails instead, since a green run must mean it ran.
 */
export function describeLab(name: string, body: () => void): void {
  const reason = labSkipReason();
  if (reason === undefined) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('has the lab prerequisites (required in CI)', () => {
        throw new Error(`The lab cannot run on this CI machine: ${reason}.`);
      });
    });
  } else {
    describe.skip(`${name} (not run: ${reason})`, body);
  }
}

/** A lab for the current suite; `lab` throws when read before beforeAll finished. */
export interface LabHandle {
  readonly lab: Lab;
}

/**
 * Brings a lab up in beforeAll and down in afterAll. With TRUSTPLAY_LAB_DIR set, reuses that lab
 * and leaves it running (it belongs to whoever started it).
 */
export function useLab(
  opts: {
    nodes?: number;
    containerd?: ContainerdVersionKey[];
    flavour?: NodeFlavour[];
    tlsVariants?: boolean;
    login?: NodeLogin[];
    docker?: boolean[];
    containers?: boolean[];
  } = {},
): LabHandle {
  let lab: Lab | undefined;
  let owned = false;
  beforeAll(async () => {
    const shared = process.env.TRUSTPLAY_LAB_DIR;
    if (shared) {
      lab = labState(shared);
      if (opts.nodes !== undefined && lab.nodes.length < opts.nodes) {
        throw new Error(
          `The lab at ${shared} has ${lab.nodes.length} nodes but this suite needs ${opts.nodes}: start it with --nodes ${opts.nodes}.`,
        );
      }
      const want = opts.containerd;
      const have = lab.nodes.map((n) => n.containerd.version);
      if (want && want.some((v, i) => have[i] !== v)) {
        throw new Error(
          `The lab at ${shared} runs containerd ${have.join(',')} but this suite needs ${want.join(',')}: start it with --containerd ${want.join(',')}.`,
        );
      }
      const flavours = lab.nodes.map((n) => n.flavour ?? 'containerd');
      if (opts.flavour && opts.flavour.some((f, i) => flavours[i] !== f))
        throw new Error(
          `The lab at ${shared} runs ${flavours.join(',')} nodes but this suite needs ${opts.flavour.join(',')}: start it with --flavour ${opts.flavour.join(',')}.`,
        );
      if (opts.tlsVariants && !lab.variants)
        throw new Error(
          `The lab at ${shared} has no TLS variants but this suite needs them: start it with --tls-variants.`,
        );
      if (opts.docker?.some((d, i) => d && !lab!.nodes[i]?.docker))
        throw new Error(
          `The lab at ${shared} does not run Docker Engine on the nodes this suite needs: start it with --docker ${opts.docker.map((d) => (d ? 'yes' : 'no')).join(',')}.`,
        );
      if (opts.containers?.some((d, i) => d && !lab!.nodes[i]?.containers))
        throw new Error(
          `The lab at ${shared} has no containers/image programs on the nodes this suite needs: start it with --containers ${opts.containers.map((d) => (d ? 'yes' : 'no')).join(',')}.`,
        );
      exportSudoPassword(lab);
      return;
    }
    owned = true;
    lab = await labUp({
      nodes: opts.nodes ?? 3,
      containerd: opts.containerd,
      flavour: opts.flavour,
      tlsVariants: opts.tlsVariants,
      login: opts.login,
      docker: opts.docker,
      containers: opts.containers,
    });
    exportSudoPassword(lab);
  });
  afterAll(async () => {
    if (lab?.loginUser) delete process.env[LAB_SUDO_PASSWORD_ENV];
    if (lab && owned) await labDown(lab);
  });
  return {
    get lab(): Lab {
      if (!lab) throw new Error('The lab is not up yet: read `lab` inside a test or hook, not at collection time.');
      return lab;
    },
  };
}

/** The CLI runs a test starts inherit the sudo password the lab inventory's become_password_env names. */
function exportSudoPassword(lab: Lab): void {
  if (lab.loginUser) process.env[LAB_SUDO_PASSWORD_ENV] = lab.loginUser.password;
}

/**
 * The ways a suite that must behave the same whatever the login runs: as root, and as the lab's
 * sudo user with become (NOPASSWD on some nodes, a password on the others). `login` gives each
 * node's login for `useLab`; `title` goes in the suite's name.
 */
export const LOGIN_MODES: { title: string; login: (nodes: number, flip?: boolean) => NodeLogin[] }[] = [
  { title: 'as root', login: () => ['root'] },
  {
    title: 'as a sudo user with become',
    login: (nodes, flip = false) =>
      Array.from({ length: nodes }, (_, i): NodeLogin => ((i % 2 === 0) !== flip ? 'nopasswd' : 'password')),
  },
];
