/**
 * Which runtime kubelet uses, from real-shaped kubelet command lines (kubeadm, RKE2, cri-dockerd,
 * CRI-O, a dockershim-era node), kubeadm's KubeletConfiguration and kubeadm-flags.env, decoded
 * from the reader's own wire format; and KUBELET_PRELUDE run for real by this machine's sh
 * (dash on Debian) through readNode, against a process whose comm is `kubelet`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalConnection } from '../connection/local.js';
import { parseNodeRead, readNode } from '../connection/read-files.js';
import {
  describeKubeletRuntime,
  endpointRuntime,
  KUBEADM_FLAGS_ENV,
  KUBELET_CONFIG,
  KUBELET_PRELUDE,
  kubeadmFlagsArgs,
  kubeletFlags,
  kubeletRuntime,
} from './kubelet-runtime.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** The prelude's records as the node prints them. */
function proc(pid: number, ns: 'same' | 'other' | 'unknown', argv: string[]): string {
  return `@@kubelet-proc ${pid} ${ns}\n${b64(argv.map((a) => `${a}\0`).join(''))}\n`;
}
function file(path: string, text: string): string {
  return `@@kubelet-file ${b64(path)} file\n${b64(text)}\n`;
}
function state(path: string, s: 'absent' | 'link' | 'other' | 'unreadable'): string {
  return `@@kubelet-file ${b64(path)} ${s}\n`;
}
const read = (...records: string[]) => parseNodeRead(`${records.join('')}@@end\n`);
const noFiles = [state(KUBELET_CONFIG, 'absent'), state(KUBEADM_FLAGS_ENV, 'absent')];

// kubeadm 1.29's /var/lib/kubelet/config.yaml (kubeadm writes containerRuntimeEndpoint empty and
// passes the endpoint as a flag in kubeadm-flags.env).
const KUBEADM_CONFIG = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
`;
const KUBEADM_FLAGS = `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n`;
// What the kubeadm drop-in (10-kubeadm.conf) runs: its own flags, then kubeadm-flags.env's.
const KUBEADM_ARGV = [
  '/usr/bin/kubelet',
  '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
  '--kubeconfig=/etc/kubernetes/kubelet.conf',
  '--config=/var/lib/kubelet/config.yaml',
  '--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock',
  '--pod-infra-container-image=registry.k8s.io/pause:3.9',
];

describe('kubeletRuntime: the running kubelet', () => {
  it('kubeadm node: the flag on the command line, over the config file that sets none', () => {
    const k = kubeletRuntime(
      read(proc(812, 'same', KUBEADM_ARGV), file(KUBELET_CONFIG, KUBEADM_CONFIG), ...noFiles.slice(1)),
    );
    expect(k).toEqual({
      kubelet: 'process',
      pid: 812,
      endpoint: 'unix:///var/run/containerd/containerd.sock',
      source: "kubelet's --container-runtime-endpoint",
      runtime: 'containerd',
      cri: 'containerd',
      evidence: ['kubelet process 812', `config ${KUBELET_CONFIG}`],
    });
    expect(describeKubeletRuntime(k)).toBe(
      "uses containerd (unix:///var/run/containerd/containerd.sock, from kubelet's --container-runtime-endpoint)",
    );
  });

  it('the flag and its value as two arguments, the last one given wins (as pflag does)', () => {
    const argv = ['/usr/bin/kubelet', '--container-runtime-endpoint', '/run/crio/crio.sock', '--v=2'];
    expect(kubeletRuntime(read(proc(5, 'same', argv), ...noFiles))).toMatchObject({
      endpoint: '/run/crio/crio.sock',
      runtime: 'containers/image',
      cri: 'cri-o',
    });
    expect(
      kubeletFlags(['--container-runtime-endpoint=unix:///a.sock', '--container-runtime-endpoint', 'unix:///b.sock']),
    ).toEqual({ endpoint: 'unix:///b.sock' });
  });

  it('cri-dockerd node (Mirantis cri-dockerd install docs): Docker Engine through cri-dockerd', () => {
    const argv = [
      '/usr/bin/kubelet',
      '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
      '--kubeconfig=/etc/kubernetes/kubelet.conf',
      '--config=/var/lib/kubelet/config.yaml',
      '--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock',
      '--pod-infra-container-image=registry.k8s.io/pause:3.9',
    ];
    const k = kubeletRuntime(read(proc(99, 'same', argv), file(KUBELET_CONFIG, KUBEADM_CONFIG), ...noFiles.slice(1)));
    expect(k).toMatchObject({ runtime: 'docker', cri: 'cri-dockerd', endpoint: 'unix:///var/run/cri-dockerd.sock' });
    expect(describeKubeletRuntime(k)).toBe(
      "uses Docker Engine through cri-dockerd (unix:///var/run/cri-dockerd.sock, from kubelet's --container-runtime-endpoint)",
    );
  });

  it("RKE2 node: its kubelet is a process of its own, on k3s's containerd socket", () => {
    const argv = [
      'kubelet',
      '--volume-plugin-dir=/var/lib/kubelet/volumeplugins',
      '--file-check-frequency=5s',
      '--sync-frequency=30s',
      '--address=0.0.0.0',
      '--anonymous-auth=false',
      '--authentication-token-webhook=true',
      '--authorization-mode=Webhook',
      '--cgroup-driver=systemd',
      '--client-ca-file=/var/lib/rancher/rke2/agent/client-ca.crt',
      '--cloud-provider=external',
      '--cluster-dns=10.43.0.10',
      '--cluster-domain=cluster.local',
      '--container-runtime-endpoint=unix:///run/k3s/containerd/containerd.sock',
      '--containerd=/run/k3s/containerd/containerd.sock',
      '--eviction-hard=imagefs.available<5%,nodefs.available<5%',
      '--hostname-override=node1',
      '--kubeconfig=/var/lib/rancher/rke2/agent/kubelet.kubeconfig',
      '--node-labels=',
      '--pod-infra-container-image=index.docker.io/rancher/mirrored-pause:3.6',
      '--pod-manifest-path=/var/lib/rancher/rke2/agent/pod-manifests',
    ];
    const k = kubeletRuntime(read(proc(4242, 'same', argv), ...noFiles), {
      kind: 'rke2',
      evidence: ['unit rke2-server active'],
    });
    expect(k).toMatchObject({
      kubelet: 'process',
      endpoint: 'unix:///run/k3s/containerd/containerd.sock',
      runtime: 'containerd',
      evidence: ['kubelet process 4242', 'kubelet runs without --config: no config file'],
    });
  });

  it('the config file --config names sets the endpoint when no flag does (Kubernetes ≥ 1.27)', () => {
    const cfg = '/etc/kubernetes/kubelet/config.json';
    const k = kubeletRuntime(
      read(
        proc(7, 'same', ['/usr/local/bin/kubelet', '--config', cfg, '--v=2']),
        // JSON is YAML: EKS-style nodes write their KubeletConfiguration as JSON.
        file(
          cfg,
          JSON.stringify({
            kind: 'KubeletConfiguration',
            containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
          }),
        ),
        ...noFiles,
      ),
    );
    expect(k).toMatchObject({
      endpoint: 'unix:///run/containerd/containerd.sock',
      source: `containerRuntimeEndpoint in ${cfg}`,
      runtime: 'containerd',
    });
  });

  it("neither flag nor config: kubelet's default, said as such", () => {
    const k = kubeletRuntime(
      read(
        proc(7, 'same', ['/usr/bin/kubelet', `--config=${KUBELET_CONFIG}`]),
        file(KUBELET_CONFIG, KUBEADM_CONFIG),
        noFiles[1]!,
      ),
    );
    expect(k).toMatchObject({ endpoint: 'unix:///run/containerd/containerd.sock', runtime: 'containerd' });
    expect(k.source).toMatch(/^kubelet's default/);
  });

  it('dockershim era (Kubernetes ≤ 1.23): --container-runtime=docker means Docker Engine through dockershim', () => {
    const argv = [
      '/usr/bin/kubelet',
      '--config=/var/lib/kubelet/config.yaml',
      '--container-runtime=docker',
      '--network-plugin=cni',
    ];
    const k = kubeletRuntime(read(proc(3, 'same', argv), ...noFiles));
    expect(k).toMatchObject({ endpoint: 'unix:///var/run/dockershim.sock', runtime: 'docker', cri: 'dockershim' });
    expect(describeKubeletRuntime(k)).toMatch(
      /^uses Docker Engine through dockershim \(unix:\/\/\/var\/run\/dockershim.sock, from kubelet's --container-runtime=docker/,
    );
  });

  it('an endpoint trustplay does not know is reported as it is', () => {
    const k = kubeletRuntime(
      read(
        proc(3, 'same', ['/usr/bin/kubelet', '--container-runtime-endpoint=unix:///run/custom/cri.sock']),
        ...noFiles,
      ),
    );
    expect(k).toMatchObject({ endpoint: 'unix:///run/custom/cri.sock', runtime: null, cri: null });
    expect(describeKubeletRuntime(k)).toMatch(
      /^uses a runtime trustplay does not know at unix:\/\/\/run\/custom\/cri.sock /,
    );
  });

  it('--image-service-endpoint, when set, is where pulls go', () => {
    const argv = [
      '/usr/bin/kubelet',
      '--container-runtime-endpoint=unix:///run/containerd/containerd.sock',
      '--image-service-endpoint=unix:///var/run/crio/crio.sock',
    ];
    const k = kubeletRuntime(read(proc(3, 'same', argv), ...noFiles));
    expect(k).toMatchObject({
      runtime: 'containers/image',
      cri: 'cri-o',
      image_endpoint: 'unix:///var/run/crio/crio.sock',
    });
    expect(describeKubeletRuntime(k)).toContain(
      '; pulls images through CRI-O (containers/image) (unix:///var/run/crio/crio.sock)',
    );
  });

  it('a kubelet in another mount namespace (a kind or k3d node container) is not this node’s', () => {
    const k = kubeletRuntime(read(proc(900, 'other', KUBEADM_ARGV), ...noFiles));
    expect(k.kubelet).toBe('none');
    expect(k.evidence).toContain(
      "kubelet process 900 in another mount namespace (a node container's, not this node's): not used",
    );
  });

  it('a config file that is a link is not read through', () => {
    const k = kubeletRuntime(
      read(
        proc(7, 'same', ['/usr/bin/kubelet', `--config=${KUBELET_CONFIG}`]),
        state(KUBELET_CONFIG, 'link'),
        noFiles[1]!,
      ),
    );
    expect(k.evidence).toContain(`config ${KUBELET_CONFIG}: a symbolic link: not read`);
    expect(k.source).toMatch(/^kubelet's default/);
  });
});

describe('kubeletRuntime: no kubelet process', () => {
  it("k3s node: k3s runs kubelet in its own process, with its embedded containerd's socket", () => {
    const k = kubeletRuntime(read(...noFiles), { kind: 'k3s', evidence: ['unit k3s active'] });
    expect(k).toEqual({
      kubelet: 'k3s',
      endpoint: 'unix:///run/k3s/containerd/containerd.sock',
      source: "k3s's embedded containerd (k3s runs kubelet inside its own process)",
      runtime: 'containerd',
      cri: 'containerd',
      evidence: ['no kubelet process', 'k3s node (unit k3s active)'],
    });
  });

  it('kubeadm files of a kubelet that is not running: kubeadm-flags.env over config.yaml', () => {
    const k = kubeletRuntime(read(file(KUBELET_CONFIG, KUBEADM_CONFIG), file(KUBEADM_FLAGS_ENV, KUBEADM_FLAGS)));
    expect(k).toMatchObject({
      kubelet: 'files',
      endpoint: 'unix:///var/run/containerd/containerd.sock',
      source: `${KUBEADM_FLAGS_ENV}'s --container-runtime-endpoint`,
      runtime: 'containerd',
    });
    expect(describeKubeletRuntime(k)).toMatch(/; kubelet is not running: from its files$/);
  });

  it('kubeadm-flags.env of the dockershim era', () => {
    const env =
      'KUBELET_KUBEADM_ARGS="--cgroup-driver=systemd --network-plugin=cni --pod-infra-container-image=k8s.gcr.io/pause:3.5"\n';
    expect(kubeadmFlagsArgs(env)).toEqual([
      '--cgroup-driver=systemd',
      '--network-plugin=cni',
      '--pod-infra-container-image=k8s.gcr.io/pause:3.5',
    ]);
    const legacy = 'KUBELET_KUBEADM_ARGS="--container-runtime=docker --network-plugin=cni"\n';
    expect(kubeletRuntime(read(state(KUBELET_CONFIG, 'absent'), file(KUBEADM_FLAGS_ENV, legacy)))).toMatchObject({
      runtime: 'docker',
      cri: 'dockershim',
    });
  });

  it('no process and no file: no kubelet', () => {
    const k = kubeletRuntime(read(...noFiles));
    expect(k).toEqual({
      kubelet: 'none',
      endpoint: null,
      source: null,
      runtime: null,
      cri: null,
      evidence: ['no kubelet process', `no ${KUBELET_CONFIG} or ${KUBEADM_FLAGS_ENV}`],
    });
    expect(describeKubeletRuntime(k)).toBe(`none (no kubelet process, no ${KUBELET_CONFIG} or ${KUBEADM_FLAGS_ENV})`);
  });
});

describe('endpointRuntime', () => {
  it.each([
    ['unix:///run/containerd/containerd.sock', 'containerd', 'containerd'],
    ['/run/containerd/containerd.sock', 'containerd', 'containerd'],
    ['unix:///run/k3s/containerd/containerd.sock', 'containerd', 'containerd'],
    ['unix:///run/cri-dockerd.sock', 'docker', 'cri-dockerd'],
    ['/var/run/cri-dockerd.sock', 'docker', 'cri-dockerd'],
    ['unix:///var/run/dockershim.sock', 'docker', 'dockershim'],
    ['unix:///var/run/crio/crio.sock', 'containers/image', 'cri-o'],
    ['unix:///run/other.sock', null, null],
    ['tcp://10.0.0.1:1234', null, null],
  ])('%s', (endpoint, runtime, cri) => {
    expect(endpointRuntime(endpoint)).toEqual({ runtime, cri });
  });
});

describe('KUBELET_PRELUDE on this machine (sh, a real process whose comm is kubelet)', () => {
  // There is no kubelet package: a perl script named `kubelet` stands in (the kernel names a
  // script's process after the script, so its comm is `kubelet`; its command line is perl's, the
  // script's path, then kubelet's real flags). Perl is part of Debian's base system.
  let dir: string;
  let child: ChildProcess;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tp-kubelet-'));
    const bin = join(dir, 'kubelet');
    writeFileSync(bin, '#!/usr/bin/perl\n# stands in for kubelet (trustplay test): sleeps\nsleep;\n');
    chmodSync(bin, 0o755);
    writeFileSync(
      join(dir, 'my config.yaml'),
      'kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/crio/crio.sock\n',
    );
    child = spawn(bin, [`--config`, join(dir, 'my config.yaml'), '--v=2'], { stdio: 'ignore' });
    const pid = child.pid!;
    for (let i = 0; i < 100; i++) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'kubelet') return;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('the stand-in kubelet did not start');
  });
  afterAll(() => {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the process, reads the config file its --config names (a path with a space), and decides', async () => {
    const r = await readNode(new LocalConnection(), { prelude: KUBELET_PRELUDE, files: [] });
    const k = kubeletRuntime(r);
    expect(k).toMatchObject({
      kubelet: 'process',
      pid: child.pid,
      endpoint: 'unix:///run/crio/crio.sock',
      source: `containerRuntimeEndpoint in ${join(dir, 'my config.yaml')}`,
      runtime: 'containers/image',
    });
  });
});
