/**
 * The agent's image, end to end on one lab node: built here from Debian packages and the built app
 * (scripts/build-agent-image.ts; no base image, no outside container registry), twice, to the same
 * digest; pushed to the lab registry; pulled by the node's containerd through the CRI (as kubelet
 * would) once the node trusts that registry (a `containerd.tls` run over SSH: the bootstrap the
 * README asks for, since the agent cannot come from a registry the node does not trust); then the
 * pulled image's own entrypoint runs on the node, with the image's libraries only.
 *
 * What runs the entrypoint: the node's containerd, through `ctr run` with the runc shim, on the
 * image as the CRI pulled and unpacked it. What is NOT run: a pod (there is no kubelet here), so the
 * DaemonSet's securityContext and volumes are not applied (test/e2e/agent-capabilities.test.ts
 * covers the capabilities), and `trustplay agent` itself does not reach an API server: the
 * container runs `--version`, `nsenter --version` and `sh`, the three programs the agent needs.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildAgentImage, IMAGE_NAME, type AgentImageBuild } from '../../scripts/build-agent-image.js';
import { writeOciLayout } from '../../scripts/oci-image.js';
import { createCriClient } from '../../src/cri/client.js';
import { pushImage } from '../lab/oci-image.js';
import { trustplay } from '../support/cli.js';
import { describeLab, useLab } from '../support/lab-fixture.js';
import { criPull, inNode, writeTrustCaPlaybook } from '../support/lab-node.js';

describeLab('the agent image: built from Debian packages, pushed, pulled through the CRI, run (lab: 1 node)', () => {
  const env = useLab({ nodes: 1 });
  let tmp: string;
  let built: AgentImageBuild;
  const ref = (): string => `${env.lab.registries.registry.host}/${IMAGE_NAME}:${built.tag}`;

  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-agent-image-'));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  it('builds the same image twice (same digest, same OCI layout bytes)', async () => {
    built = await buildAgentImage();
    const again = await buildAgentImage();
    expect(again.image.digest).toBe(built.image.digest);
    writeOciLayout(path.join(tmp, 'a'), built.image, built.tag);
    writeOciLayout(path.join(tmp, 'b'), again.image, again.tag);
    for (const f of ['oci-layout', 'index.json'])
      expect(readFileSync(path.join(tmp, 'b', f))).toEqual(readFileSync(path.join(tmp, 'a', f)));
    expect(readdirSync(path.join(tmp, 'b', 'blobs', 'sha256')).sort()).toEqual(
      readdirSync(path.join(tmp, 'a', 'blobs', 'sha256')).sort(),
    );
    const index = JSON.parse(readFileSync(path.join(tmp, 'a', 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    expect(index.manifests[0]?.digest).toBe(built.image.digest);
    expect(index.manifests[0]?.annotations['org.opencontainers.image.ref.name']).toBe(built.tag);
    // Debian's runtime, not this machine's: nodejs from trixie (Node 20), nsenter and sh.
    const names = built.packages.map((p) => p.name);
    for (const p of ['nodejs', 'libnode115', 'libc6', 'util-linux', 'dash', 'ca-certificates'])
      expect(names).toContain(p);
    console.log(
      `agent image ${built.image.digest}: ${(built.size / 1048576).toFixed(1)} MiB compressed, ${(built.unpacked / 1048576).toFixed(1)} MiB unpacked`,
    );
  }, 600_000);

  it('is pulled by the node through the CRI once the node trusts the registry it is pushed to', async () => {
    const node = env.lab.nodes[0]!;
    const registry = env.lab.registries.registry;
    expect(await pushImage(registry, built.image, IMAGE_NAME, built.tag)).toBe(built.image.digest);
    // Before the trust step the node refuses the registry: the chicken and the egg.
    expect(await criPull(node.hostSocket, ref(), { fresh: true })).toMatch(/x509|certificate/);
    const pb = writeTrustCaPlaybook(path.join(tmp, 'trust.yaml'));
    const r = await trustplay(['run', pb, '-i', env.lab.inventoryPath, '--state-dir', path.join(tmp, 'state')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await criPull(node.hostSocket, ref(), { fresh: true, timeoutMs: 180_000 })).toBe('');
    const cri = createCriClient(node.hostSocket);
    try {
      const status = await cri.imageStatus(ref());
      const manifest = JSON.parse(built.image.manifest.toString()) as { config: { digest: string } };
      // The CRI's image id is the config's digest: the node holds exactly the image built here.
      expect(status?.id).toBe(manifest.config.digest);
    } finally {
      await cri.close();
    }
  }, 300_000);

  it("runs the pulled image's entrypoint on the node with containerd's runc shim", async () => {
    const node = env.lab.nodes[0]!;
    const id = `tp-agent-image-${process.pid}`;
    const run = async (args: string): Promise<string> => {
      const r = await inNode(node, `ctr -n k8s.io run --rm '${ref()}' '${id}' ${args}`);
      expect(r.code, `ctr run ${args}: ${r.stdout}${r.stderr}`).toBe(0);
      return r.stdout.trim();
    };
    expect(await run('/usr/local/bin/trustplay --version')).toBe(`trustplay ${built.tag}`);
    expect(await run('/usr/bin/nsenter --version')).toMatch(/^nsenter from util-linux 2\./);
    expect(await run(`/bin/sh -c 'echo "$PATH" && node --version'`)).toMatch(
      /^\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin\nv20\./,
    );
  }, 180_000);
});
