/** Command-line parsing shared by every command (node:util parseArgs, no dependency). */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ExitCode, ExitError } from './exit-codes.js';
import { defined } from '../defined.js';

export const commonOptions = {
  inventory: { type: 'string', short: 'i' },
  limit: { type: 'string', short: 'l' },
  forks: { type: 'string', short: 'f' },
  tags: { type: 'string', short: 't' },
  'skip-tags': { type: 'string' },
  check: { type: 'boolean', short: 'C' },
  diff: { type: 'boolean', short: 'D' },
  'extra-vars': { type: 'string', short: 'e', multiple: true },
  format: { type: 'string' },
  progress: { type: 'string' },
  recap: { type: 'string' },
  'state-dir': { type: 'string' },
  'accept-new-host-keys': { type: 'boolean' },
  'detailed-exitcode': { type: 'boolean' },
  report: { type: 'string' },
  junit: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  keep: { type: 'string' },
  all: { type: 'boolean' },
  'snapshot-key': { type: 'string' },
  'allow-unsigned': { type: 'boolean' },
  'lock-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  list: { type: 'boolean' },
  graph: { type: 'boolean' },
  host: { type: 'string' },
  resolved: { type: 'boolean' },
  'list-hosts': { type: 'boolean' },
  'playbook-dir': { type: 'string' },
  'ssh-config': { type: 'string', short: 'F' },
  'vault-id': { type: 'string', multiple: true },
  'vault-password-file': { type: 'string', multiple: true },
  'ask-vault-password': { type: 'boolean', short: 'J' },
  'ask-vault-pass': { type: 'boolean' },
  'encrypt-vault-id': { type: 'string' },
  output: { type: 'string' },
  name: { type: 'string' },
  metrics: { type: 'string' },
  'metrics-push': { type: 'string' },
  ca: { type: 'string' },
  'expiry-warning': { type: 'string' },
  'fetch-ca': { type: 'boolean' },
  'ca-fingerprint': { type: 'string' },
  'playbook-configmap': { type: 'string' },
  mode: { type: 'string' },
  interval: { type: 'string' },
  'max-unavailable': { type: 'string' },
  'max-fail-percentage': { type: 'string' },
  'lease-duration': { type: 'string' },
  'host-root': { type: 'string' },
  'host-command-prefix': { type: 'string' },
  'node-name': { type: 'string' },
  kubeconfig: { type: 'string' },
  once: { type: 'boolean' },
  'stale-after': { type: 'string' },
  before: { type: 'string' },
  clear: { type: 'boolean' },
  timeout: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export type Options = {
  inventory?: string;
  limit?: string;
  forks: number;
  tags?: string[];
  skipTags?: string[];
  check: boolean;
  diff: boolean;
  extraVars: Record<string, unknown>;
  format: 'human' | 'json' | 'jsonl';
  /** On a terminal: a bar per play (`bar`), a row per host (`rows`), or the bar when the fleet is taller than the terminal (`auto`). */
  progress: 'auto' | 'bar' | 'rows';
  /** The RECAP: a line per host (`full`), hosts with identical outcomes together (`grouped`), or grouped under the bar only (`auto`). */
  recap: 'auto' | 'grouped' | 'full';
  stateDir?: string;
  acceptNewHostKeys: boolean;
  detailedExitcode: boolean;
  report?: string;
  junit?: string;
  verbose: boolean;
  keep?: number;
  /** `snapshots prune --all`: remove every snapshot. */
  all: boolean;
  /** HMAC key file for snapshot manifests (else TRUSTPLAY_SNAPSHOT_KEY_FILE, else ~/.config/trustplay/snapshot.key). */
  snapshotKey?: string;
  /** `restore --allow-unsigned`: accept a format-1 manifest (written before signing). */
  allowUnsigned: boolean;
  /** Seconds to wait for another run's lock on a host. */
  lockTimeout: number;
  help: boolean;
  /** `inventory --list` / `--graph` / `--host NAME`, with `--resolved` connection settings. */
  list: boolean;
  graph: boolean;
  host?: string;
  resolved: boolean;
  /** run/check: print the hosts each play would touch, run nothing. */
  listHosts: boolean;
  /** `inventory`: also read group_vars/host_vars beside this playbook directory (as ansible-inventory --playbook-dir). */
  playbookDir?: string;
  /** OpenSSH client config to read (default ~/.ssh/config). */
  sshConfig?: string;
  /** Vault passwords: `LABEL@FILE` / `LABEL@prompt` (--vault-id), files (--vault-password-file), a prompt (-J). */
  vaultIds: string[];
  vaultPasswordFiles: string[];
  askVaultPassword: boolean;
  /** `vault encrypt|encrypt_string`: the vault id whose password encrypts. */
  encryptVaultId?: string;
  /** `vault encrypt|decrypt`: write here instead of in place (`-`: stdout). */
  output?: string;
  /** `vault encrypt_string`: the variable name to print before `!vault |`. */
  name?: string;
  /** Prometheus text exposition of the run, written atomically (node_exporter's textfile collector). */
  metrics?: string;
  /** A Pushgateway job's URL: the metrics are PUT there after the run. */
  metricsPush?: string;
  /** `diagnose --ca FILE`: a CA to check against what the registry serves. */
  ca?: string;
  /** `--expiry-warning 30d` (diagnose, run, check): days before a certificate's expiry to warn. */
  expiryWarningDays?: number;
  /** `diagnose --fetch-ca`: offer the root the registry serves (written only with a matching --ca-fingerprint). */
  fetchCa: boolean;
  caFingerprint?: string;
  /** `agent` and `fleet status`: as given, checked by those commands (src/cli/commands/agent.ts). */
  agent: {
    playbookConfigmap?: string;
    mode?: string;
    interval?: string;
    maxUnavailable?: string;
    maxFailPercentage?: string;
    leaseDuration?: string;
    hostRoot?: string;
    hostCommandPrefix?: string;
    nodeName?: string;
    kubeconfig?: string;
    once: boolean;
    staleAfter?: string;
    /** `fleet restore --before VERSION`, `--clear`, `--timeout 10m`. */
    before?: string;
    clear: boolean;
    timeout?: string;
  };
};

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// A name-ish word with a typo (`a b`, `1x`) is shown; anything else before `=` might be a value.
const VARIABLE_NAME_CHARS = /^[\w -]{1,40}$/;

function ordinal(n: number): string {
  return n === 1 ? 'first' : n === 2 ? 'second' : n === 3 ? 'third' : `${n}th`;
}

/** parseArgs' error in our words: an unknown option gets a "did you mean", as an unknown command does. */
async function describeParseError(e: Error): Promise<string> {
  const unknown = /^Unknown option '([^']+)'/.exec(e.message);
  if (!unknown) return e.message.replace(/\. To specify.*$/s, '');
  const given = unknown[1]!;
  const { didYouMean } = await import('../playbook/diagnostics.js');
  const names = Object.entries(commonOptions).flatMap(([long, o]) => [
    `--${long}`,
    ...('short' in o ? [`-${o.short}`] : []),
  ]);
  // A single-dash long option (`-limit`) is almost always the long one with a dash missing.
  const word = given.startsWith('--') || given.length <= 2 ? given : `-${given}`;
  const near = didYouMean(
    word,
    names.filter((n) => n.startsWith('--')),
  );
  return `unknown option \`${given}\`${near ? ` (did you mean \`${near}\`?)` : ''}`;
}

/** `30d` / `30` (days) / `12w`: a whole number of days, else exit 3. */
function parseDays(text: string): number {
  const m = /^\s*(\d+)\s*([dw]?)\s*$/.exec(text);
  if (!m)
    throw new ExitError(
      ExitCode.Invalid,
      `--expiry-warning takes a number of days such as 30d (or weeks: 4w), not \`${text}\``,
    );
  return Number(m[1]) * (m[2] === 'w' ? 7 : 1);
}

/** An option that takes one of a few words (the first is its default); anything else is exit 3 with a suggestion. */
async function oneOf<W extends string>(flag: string, given: string | undefined, words: readonly W[]): Promise<W> {
  if (given === undefined) return words[0]!;
  if ((words as readonly string[]).includes(given)) return given as W;
  const { suggestion } = await import('../playbook/diagnostics.js');
  throw new ExitError(
    ExitCode.Invalid,
    `${flag} must be ${words.slice(0, -1).join(', ')} or ${words.at(-1)}, not \`${given}\`${suggestion(given, [...words])}`,
  );
}

export async function parseOptions(argv: string[]): Promise<{ positionals: string[]; options: Options }> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: commonOptions, allowPositionals: true, strict: true });
  } catch (e) {
    throw new ExitError(ExitCode.Invalid, `${await describeParseError(e as Error)}; see \`trustplay --help\``);
  }
  const v = parsed.values;
  const forks = v.forks === undefined ? 50 : Number(v.forks);
  if (!Number.isInteger(forks) || forks < 1)
    throw new ExitError(ExitCode.Invalid, `--forks must be a whole number of at least 1, not \`${v.forks}\``);
  const format = await oneOf('--format', v.format, ['human', 'json', 'jsonl'] as const);
  const progress = await oneOf('--progress', v.progress, ['auto', 'bar', 'rows'] as const);
  const recap = await oneOf('--recap', v.recap, ['auto', 'grouped', 'full'] as const);
  const extraVars: Record<string, unknown> = {};
  if (v['extra-vars']?.length) {
    const { parse } = await import('yaml');
    for (const [i, kv] of v['extra-vars'].entries()) {
      const eq = kv.indexOf('=');
      // The argument is not echoed: without its `=` it may well be a bare secret value (-e "$TOKEN").
      if (eq <= 0)
        throw new ExitError(
          ExitCode.Invalid,
          `-e expects NAME=VALUE, but the ${ordinal(i + 1)} -e (${kv.length} character${kv.length === 1 ? '' : 's'}, not shown) has no name before an \`=\``,
        );
      const name = kv.slice(0, eq);
      // A template can only name what matches interpolate's variable names, so nothing else is a variable.
      if (!VARIABLE_NAME.test(name))
        throw new ExitError(
          ExitCode.Invalid,
          VARIABLE_NAME_CHARS.test(name)
            ? `-e: \`${name}\` is not a variable name (letters, digits, _ and -, not starting with a digit): write -e NAME=VALUE and quote the whole argument when the value has spaces`
            : `-e: the ${ordinal(i + 1)} -e has no variable name before its \`=\` (letters, digits, _ and -, not starting with a digit): write -e NAME=VALUE and quote the whole argument when the value has spaces`,
        );
      const raw = kv.slice(eq + 1);
      let value: unknown;
      try {
        value = raw === '' ? '' : parse(raw);
      } catch {
        value = raw;
      }
      extraVars[name] = value;
    }
  }
  // An unset shell variable gives `--keep ""`, which Number() would read as 0: digits only.
  if (v.keep !== undefined && !/^\d+$/.test(v.keep.trim()))
    throw new ExitError(
      ExitCode.Invalid,
      `--keep must be a whole number of snapshots to keep, not \`${v.keep}\` (to remove every snapshot use --all)`,
    );
  const keep = v.keep === undefined ? undefined : Number(v.keep.trim());
  if (v['snapshot-key'] !== undefined && v['snapshot-key'].trim() === '')
    throw new ExitError(ExitCode.Invalid, '--snapshot-key needs a file name, not an empty value');
  if (v['metrics-push'] !== undefined) {
    const { pushTargetProblem } = await import('../report/push.js');
    const problem = pushTargetProblem(v['metrics-push']);
    if (problem) throw new ExitError(ExitCode.Invalid, problem);
  }
  const lockTimeout = v['lock-timeout'] === undefined ? 60 : Number(v['lock-timeout']);
  if (!Number.isFinite(lockTimeout) || lockTimeout < 0)
    throw new ExitError(ExitCode.Invalid, `--lock-timeout must be a number of seconds, not \`${v['lock-timeout']}\``);
  const split = (s?: string) =>
    s === undefined
      ? undefined
      : s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
  const options: Options = {
    forks,
    check: v.check ?? false,
    diff: v.diff ?? false,
    extraVars,
    format,
    progress,
    recap,
    acceptNewHostKeys: v['accept-new-host-keys'] ?? false,
    detailedExitcode: v['detailed-exitcode'] ?? false,
    verbose: v.verbose ?? false,
    help: v.help ?? false,
    all: v.all ?? false,
    allowUnsigned: v['allow-unsigned'] ?? false,
    list: v.list ?? false,
    graph: v.graph ?? false,
    resolved: v.resolved ?? false,
    listHosts: v['list-hosts'] ?? false,
    lockTimeout,
    vaultIds: v['vault-id'] ?? [],
    vaultPasswordFiles: v['vault-password-file'] ?? [],
    askVaultPassword: (v['ask-vault-password'] ?? false) || (v['ask-vault-pass'] ?? false),
    fetchCa: v['fetch-ca'] ?? false,
    agent: {
      once: v.once ?? false,
      clear: v.clear ?? false,
      ...defined({
        playbookConfigmap: v['playbook-configmap'],
        mode: v.mode,
        interval: v.interval,
        maxUnavailable: v['max-unavailable'],
        maxFailPercentage: v['max-fail-percentage'],
        leaseDuration: v['lease-duration'],
        hostRoot: v['host-root'],
        hostCommandPrefix: v['host-command-prefix'],
        nodeName: v['node-name'],
        kubeconfig: v.kubeconfig,
        staleAfter: v['stale-after'],
        before: v.before,
        timeout: v.timeout,
      }),
    },
    ...defined({
      snapshotKey: v['snapshot-key'],
      playbookDir: v['playbook-dir'],
      encryptVaultId: v['encrypt-vault-id'],
      output: v.output,
      name: v.name,
      metrics: v.metrics,
      metricsPush: v['metrics-push'],
      host: v.host,
      sshConfig: v['ssh-config'],
      ca: v.ca,
      caFingerprint: v['ca-fingerprint'],
      expiryWarningDays: v['expiry-warning'] === undefined ? undefined : parseDays(v['expiry-warning']),
      inventory: v.inventory,
      limit: v.limit,
      tags: split(v.tags),
      skipTags: split(v['skip-tags']),
      stateDir: v['state-dir'],
      report: v.report,
      junit: v.junit,
      keep,
    }),
  };
  return { positionals: parsed.positionals, options };
}
