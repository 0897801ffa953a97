/**
 * The inventory variables that say where containerd lives on a host and how it is restarted
 * outside a task's own arguments (README "Host variables"), read in this one place: the node.facts
 * module shows them (`trustplay facts`), restore uses them. Commands come from here (inventory or
 * `-e`, else the defaults), never from a snapshot.
 */
import { defined } from '../defined.js';
import { rancherRestartCommand } from './flavour.js';
import { DEFAULT_RESTART_TIMEOUT, restartCommandArg } from '../playbook/schema/args-common.js';

export interface ContainerdHostSettings {
  /** `containerd_config_file`: containerd's config (unset: facts read the default, restore knows any `*\/containerd/config.toml`). */
  configFile?: string;
  /** `containerd_config_path`: the certs.d directory facts list when config.toml names none. */
  configPath?: string;
  /** `cri_socket`: the host's CRI socket (facts ask it for the running version). */
  criSocket?: string;
  /** `containerd_socket`: the socket a restore's health check waits for (else the one recorded). */
  socket?: string;
  /** `containerd_restart_command`: restarts containerd after restore put a config back. */
  restartCommand: string;
  /** `containerd_restart_command` was set; otherwise a k3s/RKE2 registries.yaml restarts its own unit. */
  explicitCommand?: boolean;
  /** `containerd_restart_timeout`: seconds that restart waits for the CRI socket. */
  restartTimeout: number;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The settings of one host from its variables (inventory, play and `-e`). */
export function containerdHostSettings(vars: Record<string, unknown>): ContainerdHostSettings {
  const timeout = vars['containerd_restart_timeout'];
  return {
    ...defined({
      configFile: text(vars['containerd_config_file']),
      configPath: text(vars['containerd_config_path']),
      criSocket: text(vars['cri_socket']),
      socket: text(vars['containerd_socket']),
    }),
    restartCommand: text(vars['containerd_restart_command']) ?? restartCommandArg.default,
    explicitCommand: text(vars['containerd_restart_command']) !== undefined,
    restartTimeout: typeof timeout === 'number' && timeout > 0 ? Math.floor(timeout) : DEFAULT_RESTART_TIMEOUT,
  };
}

/** The command that restarts what reads `path` after restore put it back (k3s/RKE2 restart their own unit). */
export function restartCommandFor(s: ContainerdHostSettings, path: string): string {
  return (!s.explicitCommand && rancherRestartCommand(path)) || s.restartCommand;
}
