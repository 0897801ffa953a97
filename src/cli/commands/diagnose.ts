/**
 * `trustplay diagnose REGISTRY [-i INVENTORY] [--limit P] [--ca FILE] [--format human|json]`: why
 * each node gets x509 for REGISTRY, seen from the node itself, with the secure fix. Changes nothing
 * on any node and takes no host lock (it reads, as `facts` does).
 *
 * Exit codes: 0 every node's trust is healthy, 2 a problem was found on a node, 4 a node could not
 * be reached (and no problem was found elsewhere), 3 invalid input.
 */
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { ExitCode, ExitError } from '../exit-codes.js';
import { hostStringVars, loadInventoryOrExit, selectHostsOrExit } from '../load.js';
import type { Options } from '../options.js';

const USAGE =
  'usage: trustplay diagnose REGISTRY [-i INVENTORY] [--limit PATTERN] [--ca FILE] [--expiry-warning 30d] [--format human|json]';

export async function diagnoseCommand(positionals: string[], options: Options): Promise<number> {
  if (positionals.length !== 1) throw new ExitError(ExitCode.Invalid, USAGE);
  const [{ normalizeRegistryHost, registryNameProblem }, { certsFromPem }] = await Promise.all([
    import('../../containerd/registry-host.js'),
    import('../../diagnose/certificate.js'),
  ]);
  const given = positionals[0] ?? '';
  const registry = normalizeRegistryHost(given);
  const why = registry === null ? 'use host or host:port' : registryNameProblem(registry.replace(/:\d+$/, ''));
  if (registry === null || why)
    throw new ExitError(
      ExitCode.Invalid,
      `diagnose: \`${given.slice(0, 100)}\` is not a registry name (${why ?? ''}); give host or host:port, e.g. registry.example:5000`,
    );
  let ca: import('../../diagnose/diagnose.js').ExtraCa | undefined;
  if (options.ca !== undefined) {
    let text: string;
    try {
      text = await readFile(options.ca, 'utf8');
    } catch (e) {
      throw new ExitError(
        ExitCode.Invalid,
        `--ca ${options.ca}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a PEM file of the registry's CA`,
      );
    }
    const certs = certsFromPem(text);
    if (certs.length === 0)
      throw new ExitError(
        ExitCode.Invalid,
        `--ca ${options.ca}: no PEM certificate in it; give the registry's CA certificate (-----BEGIN CERTIFICATE-----)`,
      );
    ca = { file: options.ca, certs };
  }
  if (options.format === 'jsonl') throw new ExitError(ExitCode.Invalid, 'diagnose: --format is human or json');

  const inventory = await loadInventoryOrExit(options);
  const [{ ConnectionPool }, { pool }, { diagnoseNode }, { causeSeverity }] = await Promise.all([
    import('../../engine/connect.js'),
    import('../../engine/run.js'),
    import('../../diagnose/diagnose.js'),
    import('../../diagnose/causes.js'),
  ]);
  const hosts = await selectHostsOrExit(inventory, options.limit);
  const conns = new ConnectionPool(inventory, { acceptNewHostKeys: options.acceptNewHostKeys });
  const results = new Map<string, import('../../diagnose/diagnose.js').Diagnosis>();
  try {
    await pool(hosts, options.forks, async (host) => {
      const str = await hostStringVars(inventory, host, options.extraVars);
      const configFile = str('containerd_config_file');
      const configPath = str('containerd_config_path');
      results.set(
        host,
        await diagnoseNode(conns.get(host), {
          registry,
          ...(ca ? { ca } : {}),
          ...(options.expiryWarningDays !== undefined ? { expiryWarningDays: options.expiryWarningDays } : {}),
          ...(configFile ? { configFile } : {}),
          ...(configPath ? { configPath } : {}),
        }),
      );
    });
  } finally {
    await conns.closeAll();
  }
  const ordered = hosts.map((h) => results.get(h)!);
  const severities = ordered.map((d) => causeSeverity(d.cause));
  const code = severities.includes('problem')
    ? ExitCode.Drift
    : severities.includes('unreachable')
      ? ExitCode.Unreachable
      : ExitCode.Ok;
  if (options.format === 'json')
    process.stdout.write(`${JSON.stringify({ registry, exitCode: code, hosts: ordered }, null, 2)}\n`);
  else process.stdout.write(ordered.map(formatDiagnosis).join('\n'));
  return code;
}

/** One node's diagnosis for a person: the cause, the evidence that decided it, the fix. */
function formatDiagnosis(d: import('../../diagnose/diagnose.js').Diagnosis): string {
  const l = [`${d.host}: ${d.cause.toUpperCase()}${d.view ? ` (seen from the ${d.view})` : ''}`, `  ${d.summary}`];
  for (const f of d.findings.slice(1)) l.push(`  also: ${f.cause}: ${f.detail}`);
  const e = d.evidence;
  for (const [i, c] of (e.chain ?? []).entries())
    l.push(
      `  served[${i}]: subject "${c.subject}", issuer "${c.issuer}"${c.san.length ? `, SAN ${c.san.join(', ')}` : ', no SAN'}, valid ${c.not_before} .. ${c.not_after}, ${c.signature}, ${c.sha256}`,
    );
  if (e.trusted_by) l.push(`  trusted by: ${e.trusted_by}`);
  if (e.trust) {
    const t = e.trust;
    l.push(
      `  node trusts for this registry: ${t.ca_files.length ? t.ca_files.join(', ') : 'no CA file of its own'}${t.skip_verify ? ' (skip_verify is ON: insecure)' : ''}; OS store ${t.os_store ?? 'not found'}`,
    );
  }
  if (e.clock_skew_seconds !== undefined && Math.abs(e.clock_skew_seconds) > 60)
    l.push(`  node clock: ${e.node_time} (${e.clock_skew_seconds} s off the controller)`);
  if (e.proxy)
    l.push(
      `  containerd proxy: HTTPS_PROXY=${e.proxy.https_proxy ?? '(unset)'} NO_PROXY=${e.proxy.no_proxy ?? '(unset)'} (${e.proxy.used ? 'used for this registry' : 'not used for this registry'}; from ${e.proxy.sources.join(', ')})`,
    );
  if (e.credentials) l.push(`  credentials held (names only): ${e.credentials.join(', ')}`);
  if (d.ca_check) l.push(`  --ca: ${d.ca_check.detail}`);
  for (const w of d.expiry_warnings ?? [])
    l.push(`  WARNING: "${w.subject}" (${w.where}) expires on ${w.not_after}, in ${w.days_left} days (${w.sha256})`);
  if (d.fix) {
    l.push(`  fix (${d.fix.by}): ${d.fix.action}`);
    if (d.fix.task)
      l.push(
        ...stringify([d.fix.task])
          .trimEnd()
          .split('\n')
          .map((x) => `    ${x}`),
      );
  }
  return `${l.join('\n')}\n`;
}
