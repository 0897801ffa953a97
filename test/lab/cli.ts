/**
 * `npm run lab -- up [--nodes N] [--dir D]` and `npm run lab -- down [--dir D]`.
 * The default directory is /tmp/trustplay-lab (also read from TRUSTPLAY_LAB_DIR), so `down`
 * and other processes find the lab `up` left running.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LAB_DIR, labDown, labRssKb, labState, labUp } from './lab.js';

const USAGE = `usage: npm run lab -- up [--nodes N] [--dir DIR]
       npm run lab -- down [--dir DIR]
       npm run lab -- status [--dir DIR]
DIR defaults to $TRUSTPLAY_LAB_DIR or ${DEFAULT_LAB_DIR}.`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { nodes: { type: 'string' }, dir: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const command = positionals[0];
  const dir = values.dir ?? process.env.TRUSTPLAY_LAB_DIR ?? DEFAULT_LAB_DIR;
  if (values.help || !command) {
    console.log(USAGE);
    return command || values.help ? 0 : 3;
  }
  switch (command) {
    case 'up': {
      const nodes = values.nodes === undefined ? 3 : Number(values.nodes);
      const lab = await labUp({ nodes, dir, log: (s) => console.error(`lab: ${s}`) });
      printSummary(dir);
      console.log(`took ${(lab.upMs / 1000).toFixed(1)} s`);
      return 0;
    }
    case 'status':
      printSummary(dir);
      return 0;
    case 'down':
      await labDown(dir);
      console.log(`lab at ${dir} is down`);
      return 0;
    default:
      console.error(`unknown command ${command}\n${USAGE}`);
      return 3;
  }
}

function printSummary(dir: string): void {
  const lab = labState(dir);
  const rss = labRssKb(lab);
  const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MB`;
  console.log(`lab dir:    ${lab.dir}`);
  console.log(`inventory:  ${lab.inventoryPath}`);
  console.log(`image:      ${lab.image.ref} (${lab.image.digest})`);
  console.log(`ca:         ${lab.ca}`);
  if (lab.kubeconfig) console.log(`kubeconfig: ${lab.kubeconfig}`);
  for (const n of lab.nodes) {
    console.log(
      `${n.name}: ssh -i ${lab.ssh.identityFile} -o UserKnownHostsFile=${lab.ssh.knownHosts} -p ${n.sshPort} root@${n.address}   (nsenter -t ${n.nsPid} -m; cri ${n.hostSocket})`,
    );
  }
  const kinds = Object.entries(rss.byKind)
    .map(([k, kb]) => `${k} ${mb(kb)}`)
    .join(', ');
  console.log(`memory:     ${mb(rss.totalKb)} RSS held (${kinds})`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
