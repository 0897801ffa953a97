/**
 * The terminal view's choices, fed run events directly: bar or rows by the fleet's height against
 * the terminal's, `--progress` and `--recap` overriding them, and the grouped recap's wording.
 */
import { describe, expect, it } from 'vitest';
import { emptyRecap, type HostRecap, type RunEvent } from '../engine/events.js';
import { groupedRecap, plain } from './format.js';
import { TerminalReporter, type TerminalViewOptions } from './progress.js';

/** A terminal of `rows` lines that keeps what is written to it. */
function terminal(rows: number): NodeJS.WriteStream & { text: string } {
  const out = { rows, columns: 160, isTTY: true, text: '', write: (s: string) => ((out.text += s), true) };
  return out as unknown as NodeJS.WriteStream & { text: string };
}

const recap = (r: Partial<HostRecap>): HostRecap => ({ ...emptyRecap(), ...r });

/** A run over `hosts` where every host ends with `ok=1` except those given. */
async function run(out: NodeJS.WriteStream, hosts: string[], o: Partial<TerminalViewOptions>, end = {}) {
  const view = new TerminalReporter(out, plain, { progress: 'auto', recap: 'auto', verbose: false, diff: false, ...o });
  const recaps: Record<string, HostRecap> = Object.fromEntries(hosts.map((h) => [h, recap({ ok: 1 })]));
  Object.assign(recaps, end);
  const events: RunEvent[] = [
    { type: 'run-start', runId: 'r', playbook: 'pb.yaml', check: false, hosts },
    { type: 'play-start', play: 'P', hosts },
    ...hosts.flatMap((h): RunEvent[] => [
      { type: 'host-start', host: h },
      {
        type: 'host-end',
        host: h,
        recap: recaps[h]!,
        failed: recaps[h]!.failed > 0,
        unreachable: recaps[h]!.unreachable > 0,
      },
    ]),
    { type: 'play-end', play: 'P' },
    {
      type: 'run-end',
      recap: recaps,
      durationMs: 1,
      exitCode: 0,
      outcome: { code: 0, reason: 'success', hosts: [] },
      check: false,
    },
  ];
  for (const e of events) view.event(e);
  await view.close();
}

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`);

describe('the terminal view', () => {
  it('draws a bar and groups the recap when the hosts outnumber the terminal lines', async () => {
    const out = terminal(10);
    await run(out, hosts(12), {}, { n5: recap({ unreachable: 1 }) });
    expect(out.text).toMatch(
      /PLAY P {2}\[█{30}\] {2}12\/12 {2}ok 11 {2}changed 0 {2}failed 0 {2}unreachable 1 {2}remaining 0/,
    );
    expect(out.text).toContain('RECAP\n11 hosts ok, 1 unreachable: n5\n');
  });

  it('keeps a line per host under the bar with --recap full', async () => {
    const out = terminal(10);
    await run(out, hosts(12), { recap: 'full' });
    expect(out.text).toMatch(/remaining 0/);
    expect(out.text).toMatch(/^RECAP\nn1 +ok=1/m);
    expect(out.text).toMatch(/^n12 +ok=1/m);
  });

  it('draws the bar for a small fleet with --progress bar', async () => {
    const small = terminal(40);
    await run(small, hosts(2), { progress: 'bar' });
    expect(small.text).toMatch(/2\/2 {2}ok 2/);
    expect(small.text).toContain('RECAP\n2 hosts ok\n');
  });
});

describe('the grouped recap', () => {
  it('names the hosts that failed or were unreachable, at most 20 a group, and counts hosts never run', () => {
    const r: Record<string, HostRecap> = {};
    for (const h of hosts(30)) r[h] = recap({ failed: 1 });
    r['ok1'] = recap({ ok: 2 });
    r['idle'] = recap({});
    const lines = groupedRecap(r, plain);
    expect(lines[0]).toBe(
      '1 host ok, 1 not run, 30 failed: n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, n12, n13, n14, n15, n16, n17, n18, n19, n20 and 10 more (--recap full lists every host)',
    );
    expect(lines[1]).toMatch(/^ {2}30 hosts {2}ok=0 {2}changed=0 {2}failed=1 .* n1, n2, .* and 10 more/);
  });
});
