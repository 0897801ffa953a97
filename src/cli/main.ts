#!/usr/bin/env node
/**
 * trustplay's entry point: one command table, commands imported lazily (fast start-up), and one
 * error boundary that turns ExitError into its exit code.
 */
import { readFileSync } from 'node:fs';
import { ExitCode, ExitError } from './exit-codes.js';

type CommandFn = (positionals: string[], options: import('./options.js').Options) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<CommandFn> }> = {
  run: {
    summary: 'run PLAYBOOK: apply the playbook to its hosts',
    load: async () => (await import('./commands/run.js')).runCommand,
  },
  check: {
    summary: 'check PLAYBOOK: report drift without changing anything (exit 2 on drift)',
    load: async () => (await import('./commands/run.js')).checkCommand,
  },
  validate: {
    summary: 'validate PLAYBOOK...: check playbooks and inventory, run nothing',
    load: async () => (await import('./commands/validate.js')).validateCommand,
  },
  inventory: {
    summary:
      "inventory -i FILE --list | --graph [GROUP] | --host NAME: the inventory as resolved (ansible-inventory's shape; --resolved adds connection settings)",
    load: async () => (await import('./commands/inventory.js')).inventoryCommand,
  },
  facts: {
    summary: 'facts: show what each host trusts and which credentials it holds (no secret values)',
    load: async () => (await import('./commands/facts.js')).factsCommand,
  },
  diagnose: {
    summary:
      'diagnose REGISTRY [--ca FILE]: why each node gets x509 for REGISTRY, seen from the node, with the secure fix (exit 2 on a problem)',
    load: async () => (await import('./commands/diagnose.js')).diagnoseCommand,
  },
  snapshots: {
    summary: 'snapshots list | show ID | prune --keep N|--all: the saved state of past runs',
    load: async () => (await import('./commands/snapshots.js')).snapshotsCommand,
  },
  restore: {
    summary: 'restore SNAPSHOT-ID: put back everything a run changed (--check, --diff, --limit)',
    load: async () => (await import('./commands/restore.js')).restoreCommand,
  },
  agent: {
    summary:
      'agent --playbook-configmap NS/NAME [--mode check|enforce] [--interval 10m] [--max-unavailable N] [--max-fail-percentage P]: pull mode on one node (a DaemonSet pod), status as the Node condition TrustplayInSync',
    load: async () => (await import('./commands/agent.js')).agentCommand,
  },
  fleet: {
    summary:
      "fleet status [--kubeconfig FILE] [--stale-after 30m]: the agents' Node conditions, with check's exit codes; fleet restore --playbook-configmap NS/NAME --before VERSION [--timeout 10m] | --clear: every agent undoes its changes since that playbook version",
    load: async () => (await import('./commands/fleet.js')).fleetCommand,
  },
  vault: {
    summary:
      'vault encrypt|decrypt|view FILE... | encrypt_string [STRING] --name VAR: Ansible Vault files and values (decrypt and view show plaintext)',
    load: async () => (await import('./commands/vault.js')).vaultCommand,
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const HELP = `usage: trustplay COMMAND [options]

commands:
${Object.values(commands)
  .map((c) => `  ${c.summary}`)
  .join('\n')}

options:
  -i, --inventory FILE     inventory (default: localhost over a local connection)
  -l, --limit PATTERN      only these hosts (names, groups, globs, a:b, a:!b, a:&b)
  -f, --forks N            hosts in parallel (default 50)
  -t, --tags A,B           only tasks with these tags;  --skip-tags A,B
  -C, --check              plan only: report what would change
      --list-hosts         run/check: print the hosts each play would touch, run nothing
  -F, --ssh-config FILE    OpenSSH client config to read (default ~/.ssh/config)
  -D, --diff               show before/after of every change (secrets masked)
  -e, --extra-vars K=V     set a variable (highest precedence); repeatable
      --format human|json|jsonl
      --progress auto|bar|rows   on a terminal: a bar per play with live counts and the slowest
                           hosts, or a row per host (auto: the bar when the hosts outnumber its lines)
      --recap auto|grouped|full  hosts with identical outcomes on one line, or a line per host
                           (auto: grouped under the bar; without a terminal full unless asked)
      --state-dir DIR      snapshots (default ~/.local/state/trustplay)
      --snapshot-key FILE  key that signs snapshots (default ~/.config/trustplay/snapshot.key)
      --accept-new-host-keys   trust unknown SSH host keys on first use
      --detailed-exitcode  run: exit 2 when something changed
      --report FILE        write the json report to FILE;  --junit FILE
      --ca FILE            diagnose: check this CA against what the registry serves each node
      --expiry-warning 30d diagnose, run, check: warn about certificates expiring within that many days
      --fetch-ca           diagnose: offer the root the registry serves; with --ca-fingerprint
                           sha256:HEX matching it, write it to --output FILE
      --lock-timeout SEC   wait this long for another run's lock on a host (default 60)
      --metrics FILE       run/check: write Prometheus metrics (in sync, last check, duration, exit code)
      --metrics-push URL   run/check: PUT the same metrics to a Pushgateway job (.../metrics/job/NAME)
      --vault-password-file FILE   password for Ansible Vault values (an executable FILE is run)
      --vault-id LABEL@FILE|LABEL@prompt   a password for one vault id; repeatable
  -J, --ask-vault-password ask for the vault password on the terminal
  -v, --verbose            full error details
      --version, -h/--help

exit codes: 0 ok, 1 a task failed, 2 drift (check) / changed (--detailed-exitcode),
            3 invalid input (nothing ran), 4 a host was unreachable
`;

const RUNS = new Set(['run', 'check', 'restore']);

/** The report (and, with --format json, the JSON on stdout) of a run that stopped on an error. */
async function reportFailure(
  name: string,
  { positionals, options }: { positionals: string[]; options: import('./options.js').Options },
  e: unknown,
): Promise<void> {
  if (!options.report && !options.junit && !options.metrics && !options.metricsPush && options.format === 'human')
    return;
  const [{ failureReport, writeReports }, { InputError }] = await Promise.all([
    import('./reports.js'),
    import('./load.js'),
  ]);
  const exit = e instanceof ExitError ? e : undefined;
  const problems = e instanceof InputError ? e.problems.filter((d) => d.severity !== 'warning') : [];
  const report = failureReport(
    {
      playbook: positionals[0] ?? '',
      check: name === 'check' || options.check,
      code: exit?.code ?? ExitCode.Failed,
      message: exit?.message ?? `internal error: ${(e as Error).message}`,
    },
    problems.map(({ file, line, col, message }) => ({ file, line, col, message })),
  );
  await writeReports(options, report);
  if (options.format === 'json') process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else if (options.format === 'jsonl')
    process.stdout.write(
      JSON.stringify({
        time: new Date().toISOString(),
        type: 'run-end',
        recap: {},
        durationMs: 0,
        exitCode: report.exitCode,
        outcome: report.outcome,
        check: report.check,
        errors: report.errors,
      }) + '\n',
    );
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    process.stdout.write(`trustplay ${version()}\n`);
    return ExitCode.Ok;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name === undefined ? ExitCode.Invalid : ExitCode.Ok;
  }
  const cmd = commands[name];
  let parsed: { positionals: string[]; options: import('./options.js').Options } | undefined;
  try {
    if (!cmd) {
      const { suggestion } = await import('../playbook/diagnostics.js');
      throw new ExitError(
        ExitCode.Invalid,
        `unknown command \`${name}\`${suggestion(name, Object.keys(commands))}; commands: ${Object.keys(commands).join(', ')}`,
      );
    }
    const { parseOptions } = await import('./options.js');
    parsed = await parseOptions(rest);
    const { positionals, options } = parsed;
    if (options.help) {
      process.stdout.write(HELP);
      return ExitCode.Ok;
    }
    if (options.vaultIds.length || options.vaultPasswordFiles.length || options.askVaultPassword) {
      const { loadVaultKeyring, useVaultKeyring, VaultError } = await import('../vault/index.js');
      try {
        useVaultKeyring(await loadVaultKeyring(options));
      } catch (e) {
        // A vault password that cannot be read is invalid input: nothing ran.
        if (e instanceof VaultError) throw new ExitError(ExitCode.Invalid, e.message);
        throw e;
      }
    }
    const fn = await cmd.load();
    return await fn(positionals, options);
  } catch (e) {
    // run, check and restore leave a report whatever happened (a stale green one would lie).
    if (parsed && RUNS.has(name))
      await reportFailure(name, parsed, e).catch((w: unknown) =>
        process.stderr.write(`trustplay: could not write the report: ${(w as Error).message}\n`),
      );
    if (e instanceof ExitError) {
      process.stderr.write(`${e.message}\n`);
      return e.code;
    }

    process.stderr.write(
      `trustplay: internal error: ${(e as Error).stack ?? String(e)}\nThis is a bug in trustplay; nothing more was changed after this point.\n`,
    );
    return ExitCode.Failed;
  }
}

// `trustplay ... | head` closes the pipe early: that is the reader's choice, not an error to report.
// The run goes on without its output (exiting here would leave host locks behind and hide the exit
// code a script reads with pipefail), then releases its locks and exits with the run's code.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') return;
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`trustplay: ${String(e)}\n`);
    process.exitCode = ExitCode.Failed;
  },
);
