/**
 * The classifier on every runtime's real text: test/fixtures/pull-errors/<runtime>-<version>.json,
 * recorded from containerd 1.6/1.7/2.1 (CRI), dockerd 20.10 (Engine API) and skopeo 1.9 in the lab
 * by scripts/gen-pull-error-fixtures.ts (test/e2e/pull-error-fixtures.test.ts checks they still match
 * the binaries). Each text must be read as the class its variant is, with a summary that names the
 * registry and hints that name that runtime's knobs, never another's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyPullError, type PullFailureClass, type PullRuntime } from './classify.js';

interface Entry {
  variant: string;
  expectedClass: PullFailureClass;
  raw?: string;
  unproducible?: string;
}

const DIR = new URL('../../test/fixtures/pull-errors/', import.meta.url);
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const runtimeOf = (file: string): PullRuntime =>
  file.startsWith('docker-') ? 'docker' : file.startsWith('skopeo-') ? 'containers' : 'containerd';
const load = (file: string) => JSON.parse(readFileSync(new URL(file, DIR), 'utf8')) as Entry[];

// What each runtime must be recorded saying (or why it cannot be made to, here).
const CLASSES: PullFailureClass[] = [
  'unknown-authority',
  'name-mismatch',
  'cn-only',
  'sha1-signature',
  'expired',
  'not-yet-valid',
  'client-cert-required',
  'plain-http',
  'not-tls',
  'unauthorized',
  'not-found',
  'unreachable',
  'dns',
  'timeout',
];

// Knobs that belong to one runtime: a hint for another must not send its user there.
const FOREIGN: Record<PullRuntime, RegExp> = {
  containerd: /docker\.tls|containers\.tls|daemon\.json|registries\.conf|dockerd|skopeo/,
  docker: /containerd|hosts\.toml|skip_verify|plain_http|kubelet|containers\.tls|registries\.conf|skopeo/,
  containers: /containerd|hosts\.toml|skip_verify|plain_http|kubelet|docker\.tls|daemon\.json|dockerd/,
};

const TLS_MODULE: Record<PullRuntime, string> = {
  containerd: 'containerd.tls',
  docker: 'docker.tls',
  containers: 'containers.tls',
};

describe('pull-error fixtures recorded from the real runtimes', () => {
  it('cover containerd 1.6, 1.7 and 2.1, Docker Engine and containers/image', () => {
    expect(FILES).toEqual(
      expect.arrayContaining(['containerd-1.6.json', 'containerd-1.7.json', 'containerd-2.1.json']),
    );
    expect(FILES.some((f) => f.startsWith('docker-'))).toBe(true);
    expect(FILES.some((f) => f.startsWith('skopeo-'))).toBe(true);
  });

  for (const file of FILES) {
    const runtime = runtimeOf(file);
    const entries = load(file);

    describe(file, () => {
      it('has every failure class, recorded or said to be unproducible with a reason', () => {
        for (const c of CLASSES) {
          const mine = entries.filter((e) => e.expectedClass === c);
          expect(mine.length, `${file}: ${c}`).toBeGreaterThan(0);
          for (const e of mine) expect(e.raw ?? e.unproducible, `${file}: ${e.variant}`).toBeTruthy();
        }
      });

      it('holds no machine paths, lab ports or passwords: placeholders only', () => {
        for (const e of entries.filter((x) => x.raw !== undefined)) {
          expect(e.raw, e.variant).not.toMatch(/\/tmp\/|\/work\/|\.test:(?!<port>|5000\b)\d+|labuser:|password/i);
        }
      });

      for (const e of entries) {
        if (e.raw === undefined) {
          it.skip(`${e.variant}: unproducible on this runtime (${e.unproducible ?? 'no reason given'})`, () => {});
          continue;
        }
        const raw = e.raw;
        it(`${e.variant} -> ${e.expectedClass}`, () => {
          const got = classifyPullError(raw, runtime);
          expect(got.class, raw).toBe(e.expectedClass);
          // The summary names the registry the node talked to, so a fleet report says which one is broken.
          const host = /\b([a-z0-9]+\.test:(?:<port>|\d+))/.exec(raw)?.[1];
          expect(host, raw).toBeDefined();
          expect(got.summary, raw).toContain(host!);
          expect(got.summary).not.toMatch(/\n/);
          // Hints speak this runtime's language only.
          expect(got.hint, `${runtime} hint for ${e.variant}`).not.toMatch(FOREIGN[runtime]);
          if (['unknown-authority', 'client-cert-required'].includes(e.expectedClass))
            expect(got.hint).toContain(TLS_MODULE[runtime]);
          if (e.expectedClass === 'sha1-signature')
            expect(got.summary).toContain(
              { containerd: 'containerd', docker: 'Docker Engine', containers: 'containers/image' }[runtime],
            );
        });
      }
    });
  }
});

describe('classifyPullError runtime hints', () => {
  const plain = 'Get "https://r.test:5000/v2/": http: server gave HTTP response to HTTPS client';
  it('keeps containerd the default (the one-argument call of existing callers)', () => {
    expect(classifyPullError(plain)).toEqual(classifyPullError(plain, 'containerd'));
    expect(classifyPullError(plain).hint).toContain('plain_http: true');
  });
  it("names each runtime's own plain-HTTP knob", () => {
    expect(classifyPullError(plain, 'docker').hint).toContain('insecure-registries');
    expect(classifyPullError(plain, 'containers').hint).toContain('registries.conf');
  });
  it("points an unrecognised failure at that runtime's log", () => {
    expect(classifyPullError('boom', 'docker').hint).toContain('journalctl -u docker');
    expect(classifyPullError('boom', 'containers').hint).toContain('skopeo --debug');
    expect(classifyPullError('boom').hint).toContain('journalctl -u containerd');
  });
});
