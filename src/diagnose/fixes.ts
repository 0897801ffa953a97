/**
 * The fix diagnose proposes for each cause: the secure one, as a ready task where trustplay can
 * apply it, else what to ask of whom. Never `skip_verify` or `plain_http`: where only the
 * registry's owner can fix the cause, the fix says so and proposes nothing on the node.
 *
 * The task's module is the node's: `containerd.tls` on a containerd node (and when the runtimes
 * were not read), `registry.trust` on a node with more than one runtime, `docker.tls` or
 * `containers.tls` on a node that has only that one.
 */
import type { Runtime } from '../modules/runtimes.js';
import type { DiagnoseOptions, Diagnosis } from './diagnose.js';
import { TRUST_MODULES } from './runtime-names.js';

/** A module that makes a node trust a registry. */
export type TrustModule = 'containerd.tls' | 'docker.tls' | 'containers.tls' | 'registry.trust';

/** The module a fix task uses for a node with these runtimes (see the file comment). */
export function trustModuleFor(runtimes: readonly Runtime[] | undefined): TrustModule {
  if (!runtimes || runtimes.length === 0) return 'containerd.tls';
  if (runtimes.length > 1) return 'registry.trust';
  return TRUST_MODULES[runtimes[0]!];
}

/** The module for a fleet: the one every node's would be, else `registry.trust`. */
export function trustModuleForAll(nodes: ReadonlyArray<readonly Runtime[] | undefined>): TrustModule {
  const modules = new Set(nodes.map(trustModuleFor));
  return modules.size === 1 ? [...modules][0]! : 'registry.trust';
}

/** A proposed fix. */
export interface Fix {
  /** Who can apply it. */
  by: 'you (trustplay)' | 'registry owner' | 'node administrator';
  /** One sentence. */
  action: string;
  /** A ready task (a playbook task as data) of the node's trust module, when trustplay can apply the fix. */
  task?: { name: string } & { [M in TrustModule]?: Record<string, unknown> };
}

const PLACEHOLDER_CA = "<the registry CA's PEM file, from the registry's owner>";

function caTaskOf(registry: string, ca: string, module: TrustModule): Fix['task'] {
  return { name: `trust ${registry}'s CA`, [module]: { registry, ca } };
}

/** The fix for a diagnosis (null when healthy or nothing on the trust side applies). */
export function fixFor(d: Diagnosis, o: DiagnoseOptions): Fix | null {
  const r = d.registry;
  const module = trustModuleFor(d.runtimes);
  const caTask = (registry: string, ca: string) => caTaskOf(registry, ca, module);
  const caOk = d.ca_check?.validates === true;
  const byCa = caOk && o.ca ? caTask(r, o.ca.file) : undefined;
  const chain = d.evidence.chain ?? [];
  const issuer = chain.at(-1)?.issuer ?? chain[0]?.issuer;
  const ignored = d.evidence.trust?.hosts_toml_ignored;
  if (
    ignored !== undefined &&
    (d.cause === 'unknown-authority' || d.cause === 'self-signed' || d.cause === 'missing-intermediate')
  )
    return {
      by: 'you (trustplay)',
      action: `${ignored}: give it a [host."https://${r}"] table with the CA, which ${module === 'registry.trust' ? 'registry.trust (through containerd.tls)' : 'containerd.tls'} writes for ${r}${d.evidence.trust?.hosts_toml?.startsWith('/var/lib/rancher/') ? ` (on k3s/RKE2 through registries.yaml: a mirror entry the agent renders as [host."https://${r}/v2/"])` : ''}${byCa ? '' : ` (with ${d.evidence.trust?.ignored_ca?.join(', ') || "the registry's CA"} copied to the controller, checked with \`trustplay diagnose ${r} --ca FILE\`)`}`,
      task: byCa ?? caTask(r, PLACEHOLDER_CA),
    };
  switch (d.cause) {
    case 'healthy':
    case 'host-unreachable':
    case 'not-found':
    case 'other':
      return null;
    case 'unknown-authority':
      return byCa
        ? {
            by: 'you (trustplay)',
            action: `trust ${o.ca?.file ?? ''} for ${r} (it validates what ${r} serves to this node)`,
            task: byCa,
          }
        : {
            by: 'you (trustplay)',
            action: `get the CA "${issuer ?? '?'}" from ${r}'s owner, check it with \`trustplay diagnose ${r} --ca FILE\`, then trust it for ${r}`,
            task: caTask(r, PLACEHOLDER_CA),
          };
    case 'self-signed':
      return byCa
        ? {
            by: 'you (trustplay)',
            action: `trust ${r}'s self-signed certificate ${o.ca?.file ?? ''} (its fingerprint matches what ${r} serves)`,
            task: byCa,
          }
        : {
            by: 'you (trustplay)',
            action: `get ${r}'s self-signed certificate from its owner (compare its fingerprint with ${chain[0]?.sha256 ?? 'the one above'}), then trust it as the CA for ${r}`,
            task: caTask(r, "<the registry's self-signed certificate, from its owner>"),
          };
    case 'missing-intermediate':
      return byCa
        ? {
            by: 'you (trustplay)',
            action: `trust ${o.ca?.file ?? ''} for ${r} (it holds the missing intermediate); better, ask ${r}'s owner to serve the full chain`,
            task: byCa,
          }
        : {
            by: 'registry owner',
            action: `serve the full chain (leaf followed by the intermediate "${chain[0]?.issuer ?? '?'}"); until then, a CA file holding the intermediate and its root, given with --ca, can be trusted for ${r}`,
          };
    case 'name-mismatch':
      return {
        by: 'registry owner',
        action: `reissue the certificate with ${r.replace(/:\d+$/, '')} in its subjectAltName, or pull through a name it does list (${chain[0]?.san.join(', ') || 'none'}); no trust setting fixes a wrong name securely`,
      };
    case 'cn-only':
      return {
        by: 'registry owner',
        action: `reissue the certificate with ${r.replace(/:\d+$/, '')} in a subjectAltName extension (Go ignores the Common Name since 1.15)`,
      };
    case 'sha1-signature':
      return {
        by: 'registry owner',
        action: 'reissue the certificate signed with SHA-256 (containerd refuses SHA-1 signatures)',
      };
    case 'expired':
      return {
        by: 'registry owner',
        action: `renew ${r}'s certificate (no trust setting makes an expired certificate valid)`,
      };
    case 'not-yet-valid':
      return {
        by: 'registry owner',
        action: `reissue ${r}'s certificate with a start date in the past, or wait until ${chain[0]?.not_before ?? 'it starts'} (the node's clock agrees with the controller's)`,
      };
    case 'clock-skew':
      return {
        by: 'node administrator',
        action: `set the node's clock right (it is ${d.evidence.clock_skew_seconds ?? '?'} s off the controller's): enable time sync, e.g. \`timedatectl set-ntp true\``,
      };
    case 'plain-http':
      return {
        by: 'registry owner',
        action: `serve TLS on ${r} (or give its TLS port); trustplay proposes nothing on the node: plain HTTP lets anyone on the path serve images`,
      };
    case 'not-tls':
      return { by: 'you (trustplay)', action: `check the registry's port: ${r} does not answer TLS or HTTP there` };
    case 'client-cert-required':
      return {
        by: 'you (trustplay)',
        action: `get a client certificate and key for this node from ${r}'s owner and give them to ${module}`,
        task: {
          name: `client certificate for ${r}`,
          [module]: {
            registry: r,
            ...(byCa ? { ca: o.ca?.file } : {}),
            client_cert: '<client certificate PEM, from the registry owner>',
            client_key: '<its private key PEM (a secret: keep it in a vault file)>',
          },
        },
      };
    case 'tls-interception':
      return {
        by: 'node administrator',
        action: `add ${r.replace(/:\d+$/, '')} to NO_PROXY in containerd's environment (the unit's drop-in) and restart containerd; only if the intercepting proxy is your organisation's, trust its CA for ${r} instead`,
      };
    case 'dns':
      return {
        by: 'node administrator',
        action: `make ${r.replace(/:\d+$/, '')} resolvable on the node (its DNS, /etc/resolv.conf or /etc/hosts)`,
      };
    case 'unreachable':
    case 'timeout':
      return {
        by: 'node administrator',
        action: `check that ${r} runs and that nothing between this node and it (firewall, proxy) blocks the port`,
      };
    case 'unauthorized':
      return {
        by: 'you (trustplay)',
        action: `give the node credentials for ${r} (image.pull.verify \`auth\`, kubelet / imagePullSecrets); node.creds.wipe removes stale ones`,
      };
  }
}
