/**
 * Which container runtime kubelet uses on a node, from what one remote read returns: kubelet's
 * running process (its command line), else its files (the config file, kubeadm's flags file), else
 * k3s/RKE2's embedded containerd. The read is `KUBELET_PRELUDE`, a `readNode` prelude, so it rides
 * the facts' existing remote command; `kubeletRuntime` is pure.
 *
 * Kubelet's own rules, followed here: a flag wins over the same setting in the config file (the
 * config file is the one `--config` names; a kubelet started without `--config` reads none), and
 * with neither, KubeletConfiguration's default `unix:///run/containerd/containerd.sock`
 * (kubernetes pkg/kubelet/apis/config/v1beta1/defaults.go, since the field came in 1.27; before
 * 1.24, `--container-runtime` defaulted to `docker`, i.e. dockershim). `--image-service-endpoint`
 * (`imageServiceEndpoint`), when set, is where kubelet's image pulls go.
 */
import { parse as parseYaml } from 'yaml';
import type { NodeRead } from '../connection/read-files.js';
import { RANCHER, type FlavourKind } from './flavour.js';

/** kubeadm's kubelet config file, and the flags file its systemd drop-in passes to kubelet. */
export const KUBELET_CONFIG = '/var/lib/kubelet/config.yaml';
export const KUBEADM_FLAGS_ENV = '/var/lib/kubelet/kubeadm-flags.env';

/** KubeletConfiguration's default endpoint (Kubernetes ≥ 1.27; see the header). */
export const KUBELET_DEFAULT_ENDPOINT = 'unix:///run/containerd/containerd.sock';
/** The endpoint dockershim served when kubelet ran it (`--container-runtime=docker`, Kubernetes ≤ 1.23). */
export const DOCKERSHIM_ENDPOINT = 'unix:///var/run/dockershim.sock';

/** What kubelet uses, and why trustplay thinks so. */
export interface KubeletRuntime {
  /**
   * Where kubelet was found: its running process (in the node's own mount namespace), only its
   * files (not running), inside k3s's own process (k3s embeds kubelet), or nowhere.
   */
  kubelet: 'process' | 'files' | 'k3s' | 'rke2' | 'none';
  /** The running kubelet's pid (kubelet: process). */
  pid?: number;
  /** The CRI endpoint kubelet talks to (null: no kubelet). */
  endpoint: string | null;
  /** Where that endpoint comes from: "kubelet's --container-runtime-endpoint", "containerRuntimeEndpoint in ...", ... */
  source: string | null;
  /**
   * The registry client whose trust rules kubelet's pulls, as `facts`' runtimes name them
   * (containerd.tls, docker.tls, containers.tls fix them); null: no kubelet or an endpoint
   * trustplay does not know.
   */
  runtime: 'containerd' | 'docker' | 'containers/image' | null;
  /** The CRI server behind the endpoint: containerd, cri-dockerd, dockershim, CRI-O; null: unknown. */
  cri: 'containerd' | 'cri-dockerd' | 'dockershim' | 'cri-o' | null;
  /** `--image-service-endpoint` / `imageServiceEndpoint`, when set: kubelet's pulls go there. */
  image_endpoint?: string;
  /** What was seen on the node, in the order it was weighed. */
  evidence: string[];
}

/** What an endpoint names: the runtime and CRI server, by its socket's file name. */
export function endpointRuntime(endpoint: string): Pick<KubeletRuntime, 'runtime' | 'cri'> {
  if (!/^(unix:\/\/)?\//.test(endpoint)) return { runtime: null, cri: null };
  const name =
    endpoint
      .replace(/^unix:\/\//, '')
      .replace(/\/+$/, '')
      .split('/')
      .pop() ?? '';
  switch (name) {
    case 'containerd.sock':
      return { runtime: 'containerd', cri: 'containerd' };
    case 'cri-dockerd.sock':
      return { runtime: 'docker', cri: 'cri-dockerd' };
    case 'dockershim.sock':
      return { runtime: 'docker', cri: 'dockershim' };
    case 'crio.sock':
      return { runtime: 'containers/image', cri: 'cri-o' };
    default:
      return { runtime: null, cri: null };
  }
}

/** The kubelet settings trustplay reads, from flags (a command line, kubeadm-flags.env). */
export interface KubeletFlags {
  endpoint?: string;
  imageEndpoint?: string;
  /** `--container-runtime` (removed in 1.27; `docker` meant dockershim, before 1.24). */
  containerRuntime?: string;
  config?: string;
}

/** Reads kubelet's flags from its arguments (pflag: `--name=value` or `--name value`; the last one wins). */
export function kubeletFlags(args: string[]): KubeletFlags {
  const names: Record<string, keyof KubeletFlags> = {
    '--container-runtime-endpoint': 'endpoint',
    '--image-service-endpoint': 'imageEndpoint',
    '--container-runtime': 'containerRuntime',
    '--config': 'config',
  };
  const out: KubeletFlags = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = eq === -1 ? a : a.slice(0, eq);
    const key = names[name];
    if (key === undefined) continue;
    if (eq !== -1) out[key] = a.slice(eq + 1);
    else if (i + 1 < args.length) out[key] = args[++i]!;
  }
  return out;
}

/** The arguments in kubeadm-flags.env's `KUBELET_KUBEADM_ARGS="..."` (as systemd splits them: on spaces). */
export function kubeadmFlagsArgs(text: string): string[] | null {
  for (const line of text.split('\n')) {
    const m = /^\s*KUBELET_KUBEADM_ARGS=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[1]!.trim();
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) v = v.slice(1, -1);
    return v.split(/\s+/).filter((a) => a !== '');
  }
  return null;
}

/** containerRuntimeEndpoint / imageServiceEndpoint of a KubeletConfiguration (YAML or JSON), or why not. */
export function kubeletConfigEndpoints(
  text: string,
): { ok: true; endpoint?: string; imageEndpoint?: string } | { ok: false; error: string } {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    return { ok: false, error: `not valid YAML (${(e as Error).message.split('\n')[0]})` };
  }
  if (doc === null || doc === undefined) return { ok: true };
  if (typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, error: 'not a KubeletConfiguration' };
  const d = doc as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const endpoint = str(d['containerRuntimeEndpoint']);
  const imageEndpoint = str(d['imageServiceEndpoint']);
  return { ok: true, ...(endpoint ? { endpoint } : {}), ...(imageEndpoint ? { imageEndpoint } : {}) };
}

// Records: `@@kubelet-proc <pid> <same|other|unknown>` + its /proc cmdline (base64), for each
// process whose comm is kubelet, with whether it runs in the reader's mount namespace (a kubelet of
// a kind/k3d node container or another namespace is not this node's; unknown when the namespace
// link can not be read, as a non-root user); `@@kubelet-file <path> <file|link|other|unreadable|absent>`
// + content, for the config file a same/unknown kubelet names, kubeadm's config and flags files.
// Links are not read through (their target could be any file on the node). No fork per process
// (\`read\` is a builtin; pgrep, which reads more of each process, measured slower): ~90 ms for 180
// processes on a 2-core machine at load 9, where a bare \`sh -c :\` took 39 ms.
/** A `readNode` prelude reading what `kubeletRuntime` needs; POSIX sh, quiet when anything is missing. */
export const KUBELET_PRELUDE = `kfile() {
  if [ -L "$1" ]; then echo "@@kubelet-file $(b64 "$1") link"
  elif [ -f "$1" ]; then
    if [ -r "$1" ]; then echo "@@kubelet-file $(b64 "$1") file"; { base64 < "$1"; } 2>/dev/null
    else echo "@@kubelet-file $(b64 "$1") unreadable"; fi
  elif [ -e "$1" ]; then echo "@@kubelet-file $(b64 "$1") other"
  else echo "@@kubelet-file $(b64 "$1") absent"; fi
}
kself=
kread=" "
for kd in /proc/[0-9]*; do
  kc=; { IFS= read -r kc < "$kd/comm"; } 2>/dev/null
  [ "$kc" = kubelet ] || continue
  [ -n "$kself" ] || kself=$(readlink /proc/self/ns/mnt 2>/dev/null)
  kns=$(readlink "$kd/ns/mnt" 2>/dev/null)
  if [ -z "$kns" ] || [ -z "$kself" ]; then kw=unknown; elif [ "$kns" = "$kself" ]; then kw=same; else kw=other; fi
  echo "@@kubelet-proc \${kd#/proc/} $kw"
  { base64 < "$kd/cmdline"; } 2>/dev/null
  [ "$kw" = other ] && continue
  kcfg=$({ tr '\\000' '\\n' < "$kd/cmdline"; } 2>/dev/null | { kn=0; while IFS= read -r ka; do
    if [ "$kn" = 1 ]; then printf '%s' "$ka"; break; fi
    case $ka in --config=*) printf '%s' "\${ka#--config=}"; break ;; --config) kn=1 ;; esac
  done; })
  case $kcfg in /*) case $kread in *" $kcfg "*) ;; *) kread="$kread$kcfg "; kfile "$kcfg" ;; esac ;; esac
done
for kf in ${KUBELET_CONFIG} ${KUBEADM_FLAGS_ENV}; do
  case $kread in *" $kf "*) ;; *) kfile "$kf" ;; esac
done`;

/** One kubelet file as the prelude saw it. */
type KubeletFile = { state: 'file'; text: string } | { state: 'link' | 'other' | 'unreadable' | 'absent' };

/** The flavour fields the k3s/RKE2 fallback needs. */
export type KubeletFlavour = { kind: FlavourKind; evidence: string[] };

/**
 * What kubelet uses, from a read made with KUBELET_PRELUDE and the node's flavour (k3s runs kubelet
 * inside its own process, with its embedded containerd, so no kubelet process shows there).
 */
export function kubeletRuntime(read: Pick<NodeRead, 'records'>, flavour?: KubeletFlavour): KubeletRuntime {
  const files = new Map<string, KubeletFile>();
  const procs: Array<{ pid: number; ns: string; args: string[] }> = [];
  for (const r of read.records) {
    if (r.tag === 'kubelet-proc' && r.fields.length === 2) {
      const args = (r.content ?? Buffer.alloc(0)).toString('utf8').split('\0');
      if (args.at(-1) === '') args.pop();
      procs.push({ pid: Number(r.fields[0]), ns: r.fields[1]!, args });
    } else if (r.tag === 'kubelet-file' && r.fields.length === 2) {
      const path = Buffer.from(r.fields[0]!, 'base64').toString('utf8');
      const state = r.fields[1]!;
      if (state === 'file') files.set(path, { state, text: (r.content ?? Buffer.alloc(0)).toString('utf8') });
      else if (state === 'link' || state === 'other' || state === 'unreadable' || state === 'absent')
        files.set(path, { state });
    }
  }
  const evidence: string[] = [];
  const others = procs.filter((p) => p.ns === 'other');
  if (others.length)
    evidence.push(
      `kubelet process${others.length > 1 ? 'es' : ''} ${others.map((p) => p.pid).join(', ')} in another mount namespace (a node container's, not this node's): not used`,
    );
  const proc = procs.find((p) => p.ns === 'same') ?? procs.find((p) => p.ns === 'unknown');

  if (proc) {
    evidence.push(
      `kubelet process ${proc.pid}${proc.ns === 'unknown' ? ' (its mount namespace could not be read)' : ''}`,
    );
    const flags = kubeletFlags(proc.args.slice(1));
    const config = flags.config !== undefined ? configOf(flags.config, files.get(flags.config), evidence) : undefined;
    if (flags.config === undefined) evidence.push('kubelet runs without --config: no config file');
    return decide('process', flags, config, {
      flag: "kubelet's",
      file: flags.config ?? '',
      evidence,
      pid: proc.pid,
    });
  }

  if (flavour && (flavour.kind === 'k3s' || flavour.kind === 'rke2')) {
    const endpoint = `unix://${RANCHER[flavour.kind].socket}`;
    evidence.push(
      'no kubelet process',
      `${flavour.kind} node${flavour.evidence.length ? ` (${flavour.evidence.join(', ')})` : ''}`,
    );
    return {
      kubelet: flavour.kind,
      endpoint,
      source:
        flavour.kind === 'k3s'
          ? "k3s's embedded containerd (k3s runs kubelet inside its own process)"
          : "RKE2's embedded containerd (its kubelet is not running)",
      ...endpointRuntime(endpoint),
      evidence,
    };
  }

  const env = files.get(KUBEADM_FLAGS_ENV);
  const cfg = files.get(KUBELET_CONFIG);
  const envArgs = env?.state === 'file' ? kubeadmFlagsArgs(env.text) : null;
  if (env?.state === 'file' || cfg?.state === 'file') {
    evidence.push('no kubelet process');
    const flags = envArgs ? kubeletFlags(envArgs) : {};
    if (env?.state === 'file')
      evidence.push(envArgs ? `${KUBEADM_FLAGS_ENV}` : `${KUBEADM_FLAGS_ENV} has no KUBELET_KUBEADM_ARGS`);
    const config = configOf(KUBELET_CONFIG, cfg, evidence);
    return decide('files', flags, config, {
      flag: `${KUBEADM_FLAGS_ENV}'s`,
      file: KUBELET_CONFIG,
      evidence,
    });
  }
  for (const [path, f] of files)
    if (f.state !== 'absent' && f.state !== 'file') evidence.push(`${path}: ${describeState(f.state)}`);
  return {
    kubelet: 'none',
    endpoint: null,
    source: null,
    runtime: null,
    cri: null,
    evidence: ['no kubelet process', `no ${KUBELET_CONFIG} or ${KUBEADM_FLAGS_ENV}`, ...evidence],
  };
}

function describeState(s: Exclude<KubeletFile['state'], 'file'>): string {
  return s === 'link' ? 'a symbolic link: not read' : s === 'other' ? 'not a regular file' : s;
}

/** A config file's endpoints, with what was seen of it added to `evidence`. */
function configOf(
  path: string,
  f: KubeletFile | undefined,
  evidence: string[],
): { endpoint?: string; imageEndpoint?: string } | undefined {
  if (f === undefined) {
    evidence.push(`config ${path}: not read (not an absolute path)`);
    return undefined;
  }
  if (f.state !== 'file') {
    evidence.push(`config ${path}: ${describeState(f.state)}`);
    return undefined;
  }
  const c = kubeletConfigEndpoints(f.text);
  if (!c.ok) {
    evidence.push(`config ${path}: ${c.error}`);
    return undefined;
  }
  evidence.push(`config ${path}`);
  return c;
}

/** Flags over the config file over kubelet's default, as kubelet decides. */
function decide(
  kubelet: 'process' | 'files',
  flags: KubeletFlags,
  config: { endpoint?: string; imageEndpoint?: string } | undefined,
  o: { flag: string; file: string; evidence: string[]; pid?: number },
): KubeletRuntime {
  let endpoint: string;
  let source: string;
  if (flags.endpoint) {
    endpoint = flags.endpoint;
    source = `${o.flag} --container-runtime-endpoint`;
  } else if (flags.containerRuntime === 'docker') {
    endpoint = DOCKERSHIM_ENDPOINT;
    source = `${o.flag} --container-runtime=docker (dockershim, Kubernetes ≤ 1.23)`;
  } else if (config?.endpoint) {
    endpoint = config.endpoint;
    source = `containerRuntimeEndpoint in ${o.file}`;
  } else {
    endpoint = KUBELET_DEFAULT_ENDPOINT;
    source = "kubelet's default (none set; KubeletConfiguration's default since Kubernetes 1.27)";
  }
  // dockershim served the endpoint itself (its default dockershim.sock): what it names is Docker Engine.
  const mapped =
    flags.containerRuntime === 'docker'
      ? { runtime: 'docker' as const, cri: 'dockershim' as const }
      : endpointRuntime(endpoint);
  const image = flags.imageEndpoint ?? config?.imageEndpoint;
  return {
    kubelet,
    ...(o.pid !== undefined ? { pid: o.pid } : {}),
    endpoint,
    source,
    ...(image ? endpointRuntime(image) : mapped),
    ...(image ? { image_endpoint: image } : {}),
    evidence: o.evidence,
  };
}

const CRI_NAMES: Record<NonNullable<KubeletRuntime['cri']>, string> = {
  containerd: 'containerd',
  'cri-dockerd': 'Docker Engine through cri-dockerd',
  dockershim: 'Docker Engine through dockershim',
  'cri-o': 'CRI-O (containers/image)',
};

/** "uses containerd (unix:///run/containerd/containerd.sock, from kubelet's --container-runtime-endpoint)". */
export function describeKubeletRuntime(k: KubeletRuntime): string {
  if (k.kubelet === 'none') return `none (${k.evidence.join(', ')})`;
  const endpointCri = k.endpoint ? endpointRuntime(k.endpoint).cri : null;
  const what = (cri: KubeletRuntime['cri'], at: string): string =>
    cri ? CRI_NAMES[cri] : `a runtime trustplay does not know at ${at}`;
  const base = `uses ${what(k.image_endpoint ? endpointCri : k.cri, k.endpoint ?? '')} (${k.endpoint}, from ${k.source})`;
  const images = k.image_endpoint
    ? `; pulls images through ${what(k.cri, k.image_endpoint)} (${k.image_endpoint})`
    : '';
  const state = k.kubelet === 'files' ? '; kubelet is not running: from its files' : '';
  return `${base}${images}${state}`;
}
