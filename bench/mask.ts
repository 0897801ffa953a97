/**
 * The secrets layer's maskers on 1 MB inputs: a config.toml with many auth tables in every string
 * form, a docker config.json with many entries, and the input that made the old regex quadratic
 * (one long run of key characters). Each is one linear pass, so the figures grow with the size,
 * not its square. Printed, never asserted.
 */
import { maskJson, maskToml, SecretSet } from '../src/secrets/index.js';
import { median } from './util.js';

const MB = 1 << 20;

function tomlInput(): string {
  const parts: string[] = [];
  for (let i = 0, n = 0; n < MB; i++) {
    const block = [
      `[plugins."io.containerd.grpc.v1.cri".registry.configs."r${i}.example:5000".auth]`,
      '  username = "ci-bot"',
      `  password = ${['"p-' + i + '"', "'p-" + i + "'", '"""p-' + i + '"""', "'''p-" + i + "'''"][i % 4]}`,
      `  auth = "${Buffer.from(`ci-bot:p-${i}`).toString('base64')}"`,
      '',
    ].join('\n');
    parts.push(block);
    n += block.length;
  }
  return parts.join('\n');
}

function jsonInput(): string {
  const auths: Record<string, { auth: string }> = {};
  for (let i = 0, n = 0; n < MB; i++, n += 60)
    auths[`r${i}.example:5000`] = { auth: Buffer.from(`ci-bot:p-${i}`).toString('base64') };
  return JSON.stringify({ auths }, null, '\t');
}

function time(fn: () => string, reps = 5): number {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

export function benchMask(): Array<Record<string, string | number>> {
  const toml = tomlInput();
  const json = jsonInput();
  const run = 'password_' + 'a'.repeat(MB);
  const secrets = new SecretSet();
  for (let i = 0; i < 20; i++) secrets.add(`p-secret-value-${i}`);
  const row = (what: string, text: string, fn: (t: string) => string) => ({
    bench: `mask ${what}`,
    size_kb: Math.round(text.length / 1024),
    median_ms: Math.round(time(() => fn(text)) * 10) / 10,
  });
  return [
    row('config.toml (all string forms)', toml, maskToml),
    row('config.json', json, maskJson),
    row('one 1 MB run of key characters', run, maskToml),
    row('free text, 20 secrets', toml, (t) => secrets.maskText(t)),
  ];
}
