/**
 * `node.facts`: what a node's containerd trusts and which credentials it holds (registry names
 * only, never values), and the host variables trustplay reads for it. It only reads: its plan is
 * always empty. `trustplay facts` is a run of this one module over the inventory, so it has the
 * engine's host selection (`--limit`), host locks (never reading a half-applied run), forks,
 * reports and exit codes.
 */
import { defined } from '../defined.js';
import { containerdHostSettings } from '../containerd/host-settings.js';
import { gatherNodeFacts, type NodeFacts } from '../containerd/node-facts.js';
import { defineModule } from '../engine/module.js';

export const NODE_FACTS_MODULE = 'node.facts';

/** The host variables as `trustplay facts` shows them (README "Host variables"), defaults filled in. */
export interface HostVariables {
  containerd_config_file?: string;
  containerd_config_path?: string;
  cri_socket?: string;
  containerd_socket?: string;
  containerd_restart_command: string;
  containerd_restart_timeout: number;
}

/** One host's facts as the module reports them (its task result's `data.facts`). */
export type HostFacts = NodeFacts & { variables: HostVariables };

const schema = { type: 'object', additionalProperties: false, properties: {} } as const;

export default defineModule({
  name: NODE_FACTS_MODULE,
  schema,
  internal: true,
  description:
    "Read what the node's containerd trusts and which registries its credential files hold entries for, changing nothing (what `trustplay facts` runs).",
  async gather(ctx): Promise<HostFacts> {
    const s = containerdHostSettings(ctx.vars);
    const facts = await gatherNodeFacts(
      ctx.conn,
      defined({ configFile: s.configFile, configPath: s.configPath, criSocket: s.criSocket }),
    );
    const variables: HostVariables = {
      ...defined({
        containerd_config_file: s.configFile,
        containerd_config_path: s.configPath,
        cri_socket: s.criSocket,
        containerd_socket: s.socket,
      }),
      containerd_restart_command: s.restartCommand,
      containerd_restart_timeout: s.restartTimeout,
    };
    return { ...facts, variables };
  },
  plan: () => [],
  result: (facts) => ({ facts }),
});
