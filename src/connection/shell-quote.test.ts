import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildCommandLine, quote, quoteArgv } from './shell-quote.js';

/** Runs a command line the way sshd does: the login shell's -c. */
function sh(line: string, input?: string, env?: NodeJS.ProcessEnv): string {
  return execFileSync('/bin/sh', ['-c', line], { input, env: env ?? process.env, encoding: 'utf8' });
}

describe('quote', () => {
  it('round-trips any string without NUL through a real POSIX shell', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0')),
          { minLength: 1, maxLength: 20 },
        ),
        (words) => {
          const out = sh(`printf '%s\\0' ${quoteArgv(words)}`);
          expect(out.split('\0').slice(0, -1)).toEqual(words);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('leaves plain words bare and refuses NUL', () => {
    expect(quote('/etc/containerd/config.toml')).toBe('/etc/containerd/config.toml');
    expect(quote('')).toBe("''");
    expect(quote("it's")).toBe(`'it'\\''s'`);
    expect(() => quote('a\0b')).toThrow(/NUL/);
  });
});

describe('quoteArgv', () => {
  it('never lets argv[0] become an assignment or a reserved word', () => {
    expect(quoteArgv(['PATH=/tmp/evil', 'id'])).toBe("'PATH=/tmp/evil' id");
    expect(quoteArgv(['if', 'true'])).toBe("'if' true");
    expect(quoteArgv(['env', 'A=b', 'id'])).toBe('env A=b id');
    // A real shell: the would-be assignment is looked up as a command and not found; `id` never runs.
    const r = (() => {
      try {
        return { out: sh(`${quoteArgv(['PATH=/nonexistent', 'echo', 'ran'])} 2>&1`) };
      } catch (e) {
        return { code: (e as { status: number }).status, out: String((e as { stdout: string }).stdout) };
      }
    })();
    expect(r.code).toBe(127);
    expect(r.out).not.toContain('ran\n');
  });
});

describe('buildCommandLine', () => {
  it('puts env inside the command and quotes values', () => {
    const { line } = buildCommandLine({ argv: ['sh', '-c', 'printf %s "$A"'] }, { env: { A: "x' $(y)" } });
    expect(sh(line, undefined, {})).toBe("x' $(y)");
    expect(() => buildCommandLine({ argv: ['true'] }, { env: { 'BAD-NAME': 'x' } })).toThrow(
      /invalid environment variable/,
    );
  });

  it('with exec, the line replaces the shell reading it, env still applied', () => {
    const { line } = buildCommandLine({ argv: ['sh', '-c', 'printf %s "$A"'] }, { env: { A: "x' $(y)" }, exec: true });
    expect(line).toMatch(/^A=\S+ \$\(y\)' exec sh -c 'printf %s "\$A"'$/);
    // Sourced by a shell that has more to do: exec leaves it, so nothing after the line runs.
    const dir = mkdtempSync(join(tmpdir(), 'trustplay-quote-'));
    try {
      writeFileSync(join(dir, 's'), line);
      expect(sh(`. ${quote(join(dir, 's'))}; echo after`, undefined, {})).toBe("x' $(y)");
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('wraps in timeout so the remote process group dies with the channel', () => {
    const { line } = buildCommandLine({ script: 'sleep 5' }, { timeoutMs: 100 });
    expect(line).toMatch(/^timeout -k 2 1\.100 sh -c /);
  });

  it('becomes with sudo -n, env applied after sudo', () => {
    const { line, stdinPrefix } = buildCommandLine({ argv: ['id'] }, { become: true, env: { A: 'b' } });
    expect(line).toBe('sudo -n -- env A=b id');
    expect(stdinPrefix).toBeUndefined();
  });

  // A stand-in `sudo` on PATH checks the plumbing without root (test/e2e/connection-become.test.ts
  // runs the real one): the password is on no command line, sudo's stdin holds nothing but the
  // password line, and the caller's stdin reaches the command intact.
  it("feeds the become password on stdin to sudo's askpass alone, never on the command line or to the command", () => {
    const password = "s3cret 'pw' $(x)";
    const bin = mkdtempSync(join(tmpdir(), 'trustplay-sudo-'));
    try {
      writeFileSync(
        join(bin, 'sudo'),
        `#!/bin/sh
case "$*" in *s3cret*) echo "password on argv" >&2; exit 99;; esac
case "$SUDO_ASKPASS" in /*) ;; *) echo "no askpass" >&2; exit 96;; esac
[ "$1" = -A ] && [ "$2" = -p ] || exit 98
pw=$("$SUDO_ASKPASS" "$3"); [ "$pw" = ${quote(password)} ] || { echo "bad password" >&2; exit 1; }
shift 4; exec "$@"
`,
      );
      chmodSync(join(bin, 'sudo'), 0o755);
      const { line, stdinPrefix } = buildCommandLine({ argv: ['cat'] }, { become: true, becomePassword: password });
      expect(line).not.toContain('s3cret');
      const out = sh(line, `${stdinPrefix?.toString()}payload\nline 2\n`, { PATH: `${bin}:/usr/bin:/bin` });
      expect(out).toBe('payload\nline 2\n');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
