/**
 * The module registry: module name -> implementation + argument schema, imported lazily so the CLI
 * starts fast and a run loads only the modules it uses. Internal modules (handlers the engine
 * schedules itself, such as the verified containerd restart) have no playbook schema entry.
 */
import type { RegisteredModule } from '../engine/run.js';
import { moduleArgSchemas } from '../playbook/schema/modules.js';

type Loader = () => Promise<RegisteredModule>;

const user =
  (name: keyof typeof moduleArgSchemas, load: () => Promise<RegisteredModule['module']>): Loader =>
  async () => ({
    module: await load(),
    schema: moduleArgSchemas[name] as unknown as Record<string, unknown>,
  });

/** Module loaders by name. Each module file registers itself here with one line. */
export const moduleLoaders: Record<string, Loader> = {
  'containerd.tls': user(
    'containerd.tls',
    async () => (await import('./containerd-tls.js')).containerdTls as unknown as RegisteredModule['module'],
  ),
  'k8s.sa.clear': user(
    'k8s.sa.clear',
    async () => (await import('./k8s-sa-clear.js')).k8sSaClear as unknown as RegisteredModule['module'],
  ),
  'image.pull.verify': user(
    'image.pull.verify',
    async () => (await import('./image-pull-verify.js')).imagePullVerify as unknown as RegisteredModule['module'],
  ),
  'image.rmi': user(
    'image.rmi',
    async () => (await import('./image-rmi.js')).imageRmi as unknown as RegisteredModule['module'],
  ),
  'node.creds.wipe': user(
    'node.creds.wipe',
    async () => (await import('./node-creds-wipe.js')).nodeCredsWipe as unknown as RegisteredModule['module'],
  ),
  'containerd.restart': async () => {
    const m = await import('./containerd-restart.js');
    return {
      module: m.containerdRestart as unknown as RegisteredModule['module'],
      schema: m.containerdRestartSchema as unknown as Record<string, unknown>,
    };
  },
};

/** The engine's registry for user-facing and internal modules. */
export async function builtinModules(name: string): Promise<RegisteredModule | undefined> {
  const load = moduleLoaders[name];
  return load ? load() : undefined;
}

export { user as userModule };
