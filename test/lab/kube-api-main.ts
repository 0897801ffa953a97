/**
 * Process entry for the Kubernetes API emulator, so the lab can leave it running after
 * `npm run lab -- up` exits. Usage: `node --import tsx test/lab/kube-api-main.ts <options.json>`;
 * the options file holds `startKubeApi`'s options. Stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';

/** The part of test/lab/kube-api/server.ts this entry relies on. */
export interface KubeApiHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}
type StartKubeApi = (opts: Record<string, unknown>) => Promise<KubeApiHandle>;

const optionsFile = process.argv[2];
if (!optionsFile) {
  console.error('usage: kube-api-main.ts <options.json>');
  process.exit(2);
}
const opts = JSON.parse(readFileSync(optionsFile, 'utf8')) as Record<string, unknown>;
// A computed specifier: the server module is written separately and may not exist yet.
const serverModule = './kube-api/server.js';
const { startKubeApi } = (await import(serverModule)) as { startKubeApi: StartKubeApi };
const api = await startKubeApi(opts);
console.log(`kube-api listening on ${api.url}`);
const stop = (): void => {
  api.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
