/**
 * How diagnose names each runtime and its trust module. A leaf of its own: fixes.ts and diagnose.ts
 * need the names, and containerd.tls (whose pre-flight is diagnose) is imported by the modules
 * runtime-trust.ts reads through.
 */
import type { Runtime } from '../modules/runtimes.js';

/** How messages name each runtime. */
export const RUNTIME_NAMES: Record<Runtime, string> = {
  containerd: 'containerd',
  docker: 'Docker Engine',
  containers: 'containers/image',
};

/** Each runtime's own trust module. */
export const TRUST_MODULES: Record<Runtime, 'containerd.tls' | 'docker.tls' | 'containers.tls'> = {
  containerd: 'containerd.tls',
  docker: 'docker.tls',
  containers: 'containers.tls',
};
