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
  'usage: trustplay diagnose REGISTRY [-i INVENTORY] [--limit PATTERN] [--ca FILE] [--expiry-warning 30d] [--fetch-ca [--ca-fingerprint sha256:HEX --output FILE]] [--format human|json]';

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
      const criSocket = str('cri_socket');
      results.set(
        host,
        await diagnoseNode(conns.get(host), {
          registry,
          allRuntimes: true,
          ...(criSocket ? { criSocket } : {}),
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
  const fetched = options.fetchCa ? await fetchCa(registry, ordered, options) : undefined;
  // The offered certificate's PEM is for --fetch-ca only; the rest of the report names it by fingerprint.
  if (!options.fetchCa) for (const d of ordered) delete d.offered_ca;
  const severities = ordered.map((d) => causeSeverity(d.cause));
  const code = severities.includes('problem')
    ? ExitCode.Drift
    : severities.includes('unreachable')
      ? ExitCode.Unreachable
      : ExitCode.Ok;
  const exitCode = fetched?.code ?? code;
  if (options.format === 'json')
    process.stdout.write(
      `${JSON.stringify({ registry, exitCode, ...(fetched ? { fetch_ca: fetched.report } : {}), hosts: ordered }, null, 2)}\n`,
    );
  else process.stdout.write(ordered.map(formatDiagnosis).join('\n') + (fetched ? `\n${fetched.report.message}\n` : ''));
  return exitCode;
}

/**
 * `--fetch-ca`: trust on first use, done as ssh-keyscan then a fingerprint check. The certificate
 * is offered only when the registry sends a self-signed one at the top of its chain (a root, or a
 * self-signed leaf), every node is served the same one, and no proxy re-signs the traffic; it is
 * written (to --output) only with a --ca-fingerprint that matches it.
 */
async function fetchCa(
  registry: string,
  ds: import('../../diagnose/diagnose.js').Diagnosis[],
  options: Options,
): Promise<{
  code: number;
  report: { offered?: { subject: string; sha256: string }; written?: string; message: string };
}> {
  const offers = ds.map((d) => d.offered_ca).filter((o): o is NonNullable<typeof o> => o !== undefined);
  const prints = new Set(offers.map((o) => o.sha256));
  const reached = ds.filter((d) => d.evidence.chain?.length);
  const refuse = (message: string, offered?: { subject: string; sha256: string }) => ({
    code: ExitCode.Drift,
    report: { ...(offered ? { offered } : {}), message: `--fetch-ca: ${message}` },
  });
  if (offers.length === 0 || offers.length < reached.length)
    return refuse(
      `${registry} does not send a self-signed root to ${offers.length === 0 ? 'any node' : 'every node'} (or a proxy re-signs it), so there is nothing safe to fetch: get its CA from the registry's owner.`,
    );
  if (prints.size > 1)
    return refuse(
      `the nodes are served different roots for ${registry} (${[...prints].join(', ')}): something in the path differs between them; nothing is fetched.`,
    );
  const offer = offers[0]!;
  const { trustModuleForAll } = await import('../../diagnose/fixes.js');
  const module = trustModuleForAll(ds.map((d) => d.runtimes));
  const offered = { subject: offer.subject, sha256: offer.sha256 };
  if (options.caFingerprint === undefined)
    return refuse(
      `${registry} serves "${offer.subject}" with fingerprint ${offer.sha256}. Compare it with the fingerprint the registry's owner gives you (not with this output alone), then run again with --ca-fingerprint ${offer.sha256} --output FILE to write it.`,
      offered,
    );
  const want = options.caFingerprint
    .trim()
    .toLowerCase()
    .replace(/^sha256:/, '')
    .replace(/:/g, '');
  if (`sha256:${want}` !== offer.sha256)
    return refuse(
      `the fingerprint given (${options.caFingerprint}) does not match what ${registry} serves (${offer.sha256}); nothing was written. Check it with the registry's owner: a mismatch can mean someone in the path.`,
      offered,
    );
  if (!options.output)
    throw new ExitError(
      ExitCode.Invalid,
      '--fetch-ca with --ca-fingerprint writes the CA to --output FILE: give the file',
    );
  // Never half-written: a CA file cut short would be trusted as far as it goes by the next run.
  const { writeFileAtomic } = await import('../../snapshots/store.js');
  await writeFileAtomic(options.output, offer.pem, 0o644);
  const task = stringify([{ name: `trust ${registry}'s CA`, [module]: { registry, ca: options.output } }]);
  return {
    code: ExitCode.Ok,
    report: {
      offered,
      written: options.output,
      message: `--fetch-ca: wrote "${offer.subject}" (${offer.sha256}) to ${options.output}. Trust it with:\n${task.trimEnd()}`,
    },
  };
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
  const others = d.other_runtimes ?? [];
  if (others.length || (d.runtimes && !d.runtimes.includes('containerd')))
    l.push(`  runtimes: ${d.runtimes?.join(', ') ?? ''}`);
  for (const n of d.runtime_notes ?? []) l.push(`  note: ${n}`);
  if (e.trust) {
    const t = e.trust;
    l.push(
      `  ${others.length ? 'containerd trusts' : 'node trusts'} for this registry: ${t.ca_files.length ? t.ca_files.join(', ') : 'no CA file of its own'}${t.skip_verify ? ' (skip_verify is ON: insecure)' : ''}; OS store ${t.os_store ?? 'not found'}`,
    );
  }
  for (const r of others) {
    const what = r.ca_files.length
      ? r.ca_files.join(', ')
      : `no CA file of its own (${r.certs_dir}${r.exists ? ' has no *.crt' : ' absent'})`;
    l.push(
      `  ${r.runtime} (${r.evidence.join(', ')}) trusts for this registry: ${what}${r.client_cert ? `; client ${r.client_cert.join(', ')}` : ''}${r.insecure ? ` (INSECURE: ${r.insecure})` : ''}`,
    );
    for (const p of r.problems ?? []) l.push(`    problem: ${p}`);
    if (r.cause) l.push(`    ${r.runtime}: ${r.cause.toUpperCase()}: ${r.detail ?? ''}`);
    if (r.fix) l.push(`    ${r.runtime} fix: ${r.fix}`);
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
