/**
 * Runs the Kubernetes API emulator as its own process:
 *   node --import tsx test/lab/kube-api/main.ts --config <file.json> [--host H] [--port P] [--cert F] [--key F]
 * The config file holds the options of startKubeApi (tokens live there, never on the command line,
 * where `ps` would show them). Prints one JSON line {"url","port","pid"} once listening, serves the
 * /_lab/ control paths, and stops on SIGTERM or SIGINT.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startKubeApi, type KubeApiOptions } from './server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
    strict: true,
  });
  if (values.config === undefined)
    throw new Error('kube-api: pass --config <file.json> with certFile, keyFile and tokens.');
  let config: Partial<KubeApiOptions>;
  try {
    config = JSON.parse(await readFile(values.config, 'utf8')) as Partial<KubeApiOptions>;
  } catch (err) {
    throw new Error(
      `kube-api: cannot read config ${values.config}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  const certFile = values.cert ?? config.certFile;
  const keyFile = values.key ?? config.keyFile;
  if (certFile === undefined || keyFile === undefined)
    throw new Error('kube-api: the config needs certFile and keyFile (or pass --cert and --key).');
  if (config.tokens === undefined || Object.keys(config.tokens).length === 0)
    throw new Error('kube-api: the config needs at least one token in "tokens".');
  const opts: KubeApiOptions = { ...config, certFile, keyFile, tokens: config.tokens, control: config.control ?? true };
  if (values.host !== undefined) opts.host = values.host;
  if (values.port !== undefined) opts.port = Number(values.port);
  const api = await startKubeApi(opts);
  process.stdout.write(`${JSON.stringify({ url: api.url, port: api.port, pid: process.pid })}\n`);
  const stop = (): void => {
    api.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
