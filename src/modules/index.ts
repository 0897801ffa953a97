/**
 * Every module trustplay ships. The registry, the precompiled argument validators, the generated
 * `schemas/*.json` and the README module tables all read this one list: adding a module is one new
 * file in this directory (`export default defineModule({...})`) plus one line here.
 */
import type { AnyModule } from '../engine/module.js';

const files = await Promise.all([
  import('./containerd-tls.js'),
  import('./docker-tls.js'),
  import('./containers-tls.js'),
  import('./registry-trust.js'),
  import('./k8s-sa-clear.js'),
  import('./node-creds-wipe.js'),
  import('./image-rmi.js'),
  import('./image-pull-verify.js'),
  import('./containerd-restart.js'),
  import('./node-facts.js'),
]);

/** Every module, in the order the docs list them. */
export const modules: readonly AnyModule[] = files.map((f) => f.default);

/** The modules a playbook task may name (internal ones are scheduled by the engine itself). */
export const playbookModules: readonly AnyModule[] = modules.filter((m) => !m.internal);

const byName = new Map(modules.map((m) => [m.name, m]));

/** The engine's registry for user-facing and internal modules. */
export function builtinModules(name: string): Promise<AnyModule | undefined> {
  return Promise.resolve(byName.get(name));
}
