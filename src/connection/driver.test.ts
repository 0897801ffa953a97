import { describe, expect, it } from 'vitest';
import { DriverParser, driverRequest, type DriverAnswer } from './driver.js';

function parse(chunks: Buffer[]): { lines: string[]; status: string[]; frames: DriverAnswer[] } {
  const out = { lines: [] as string[], status: [] as string[], frames: [] as DriverAnswer[] };
  const p = new DriverParser({
    line: (l) => out.lines.push(l),
    status: (s) => out.status.push(s),
    frame: (a) => out.frames.push(a),
  });
  for (const c of chunks) p.push(c);
  return out;
}

describe('the driver protocol', () => {
  it('frames a request by byte counts, so any bytes may follow', () => {
    const r = driverRequest("printf 'é'", Buffer.from('a\nx 1 1\n\0'));
    expect(r.toString('latin1')).toBe(`x ${Buffer.byteLength("printf 'é'")} 9\nprintf 'Ã©'a\nx 1 1\n\0`);
  });

  it('tells the holder lines, the status and answers apart, whatever the chunking', () => {
    const stream = Buffer.concat([
      Buffer.from('\x1eD ok\nACQUIRED /run/trustplay.lock\n\x1eR 3 5 2\n'),
      Buffer.from('a\0\nb\n'),
      Buffer.from('e\n'),
      Buffer.from('\x1eR 0 0 0\nRELEASED\n'),
    ]);
    const whole = parse([stream]);
    expect(whole.status).toEqual(['ok']);
    expect(whole.lines).toEqual(['ACQUIRED /run/trustplay.lock', 'RELEASED']);
    expect(whole.frames.map((f) => [f.code, f.stdout.toString(), f.stderr.toString()])).toEqual([
      [3, 'a\0\nb\n', 'e\n'],
      [0, '', ''],
    ]);
    // One byte at a time: answer bytes that look like lines (or like a frame header) stay output.
    const bytewise = parse([...stream].map((b) => Buffer.from([b])));
    expect(bytewise).toEqual(whole);
  });

  it('an output that contains a frame header is output, not a new frame', () => {
    const fake = Buffer.from('\x1eR 9 9 9\n');
    const res = parse([Buffer.from(`\x1eR 0 ${fake.length} 0\n`), fake, Buffer.from('\x1eR 1 0 0\n')]);
    expect(res.frames.map((f) => [f.code, f.stdout.toString()])).toEqual([
      [0, fake.toString()],
      [1, ''],
    ]);
  });

  it('a big answer in many chunks is one frame, byte for byte, and what follows it is parsed', () => {
    const body = Buffer.alloc(1 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 11)) & 0xff;
    const stream = Buffer.concat([
      Buffer.from(`\x1eR 0 ${body.length} 3\n`),
      body,
      Buffer.from('err\x1eR 2 1 0\nzRELEASED\n'),
    ]);
    // SSH channel-sized chunks (32 KB), and odd-sized ones that split the headers.
    for (const size of [32_768, 4_093]) {
      const chunks: Buffer[] = [];
      for (let o = 0; o < stream.length; o += size) chunks.push(stream.subarray(o, o + size));
      const res = parse(chunks);
      expect(res.frames).toHaveLength(2);
      expect(res.frames[0]!.stdout.equals(body)).toBe(true);
      expect(res.frames[0]!.stderr.toString()).toBe('err');
      expect([res.frames[1]!.code, res.frames[1]!.stdout.toString()]).toEqual([2, 'z']);
      expect(res.lines).toEqual(['RELEASED']);
    }
  });
});
