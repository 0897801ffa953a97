/**
 * `npm run lab -- up [--nodes N] [--containerd V,V,...] [--dir D]`, `npm run lab -- down [--dir D]`
 * and `npm run lab -- fetch-containerd [V,V,...]`.
 * The default directory is /tmp/trustplay-lab (also read from TRUSTPLAY_LAB_DIR), so `down`
 * and other processes find the lab `up` left running.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LAB_DIR, LAB_SUDO_PASSWORD_ENV, labDown, labRssKb, labState, labUp, type NodeLogin } from './lab.js';
import {
  CONTAINERD_VERSIONS,
  containerdCacheDir,
  ensureContainerd,
  parseContainerdVersions,
} from './containerd-versions.js';
import type { NodeFlavour } from './node.js';

const USAGE = `usage: npm run lab -- up [--nodes N] [--containerd V[,V...]] [--flavour F[,F...]] [--tls-variants] [--login L[,L...]] [--docker yes|no[,...]] [--containers yes|no[,...]] [--dir DIR]
       npm run lab -- down [--dir DIR]
       npm run lab -- status [--dir DIR]
       npm run lab -- fetch-containerd [V[,V...]]
DIR defaults to $TRUSTPLAY_LAB_DIR or ${DEFAULT_LAB_DIR}.
--containerd gives each node's containerd version in node order (${CONTAINERD_VERSIONS.join(', ')}; default 1.6);
--flavour gives each node's flavour in node order (containerd, k3s, rke2; default containerd): a k3s/rke2
node runs the k3s stand-in (test/lab/k3s-standin.ts) with the node's containerd version.
Without --nodes there is one node per version listed. --tls-variants adds the TLS failure variants
and the intercepting proxy (every node's containerd then uses it through HTTPS_PROXY). fetch-containerd caches the pinned Debian
--login gives each node's login in node order (root, nopasswd or password: the last two log in
as the sudo user ops with become).
--docker says in node order which nodes also run Docker Engine (yes or no; missing entries: no).
--containers says which nodes have containers/image's programs (skopeo; missing entries: no).
packages (default: all) in $TRUSTPLAY_CONTAINERD_CACHE or ${containerdCacheDir()}.`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nodes: { type: 'string' },
      containerd: { type: 'string' },
      flavour: { type: 'string' },
      login: { type: 'string' },
      docker: { type: 'string' },
      containers: { type: 'string' },
      dir: { type: 'string' },
      'tls-variants': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  const dir = values.dir ?? process.env.TRUSTPLAY_LAB_DIR ?? DEFAULT_LAB_DIR;
  if (values.help || !command) {
    console.log(USAGE);
    return command || values.help ? 0 : 3;
  }
  switch (command) {
    case 'up': {
      const containerd = values.containerd === undefined ? undefined : parseContainerdVersions(values.containerd);
      const flavour = values.flavour === undefined ? undefined : parseFlavours(values.flavour);
      const nodes = values.nodes !== undefined ? Number(values.nodes) : (containerd?.length ?? flavour?.length ?? 3);
      const login = values.login?.split(',').map((l) => {
        if (l !== 'root' && l !== 'nopasswd' && l !== 'password')
          throw new Error(`--login takes root, nopasswd or password per node, not ${JSON.stringify(l)}`);
        return l as NodeLogin;
      });
      const yesNo = (flag: string, v: string | undefined): boolean[] | undefined =>
        v?.split(',').map((d) => {
          if (d !== 'yes' && d !== 'no')
            throw new Error(`--${flag} takes yes or no per node, not ${JSON.stringify(d)}`);
          return d === 'yes';
        });
      const docker = yesNo('docker', values.docker);
      const containers = yesNo('containers', values.containers);
      const lab = await labUp({
        nodes,
        docker,
        containers,
        containerd,
        flavour,
        login,
        dir,
        tlsVariants: values['tls-variants'] ?? false,
        log: (s) => console.error(`lab: ${s}`),
      });
      printSummary(dir);
      console.log(`took ${(lab.upMs / 1000).toFixed(1)} s`);
      return 0;
    }
    case 'fetch-containerd': {
      const versions = parseContainerdVersions(positionals[1] ?? CONTAINERD_VERSIONS.join(','));
      for (const v of versions) {
        const build = await ensureContainerd(v, (s) => console.error(`lab: ${s}`));
        console.log(`containerd ${v}: ${build.release} in ${build.binDir}`);
      }
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
  if (lab.loginUser)
    console.log(`sudo:       export ${LAB_SUDO_PASSWORD_ENV}=... (the password is in ${lab.dir}/lab.json, loginUser)`);
  for (const n of lab.nodes) {
    console.log(
      `${n.name} (containerd ${n.containerd.release}): ssh -i ${lab.ssh.identityFile} -o UserKnownHostsFile=${lab.ssh.knownHosts} -p ${n.sshPort} ${n.login.user}@${n.address}${n.login.sudo ? ` (sudo ${n.login.sudo})` : ''}   (nsenter -t ${n.nsPid} -m; cri ${n.hostSocket}${n.docker ? `; docker ${n.docker.hostSocket}` : ''})`,
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

function parseFlavours(list: string): NodeFlavour[] {
  return list.split(',').map((f) => {
    if (f !== 'containerd' && f !== 'k3s' && f !== 'rke2')
      throw new Error(`--flavour takes containerd, k3s or rke2 (got ${JSON.stringify(f)})`);
    return f;
  });
}
