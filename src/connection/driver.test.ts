import { describe, expect, it } from 'vitest';
import { DriverParser, driverRequest, driverToken, type DriverAnswer } from './driver.js';

function parse(chunks: Buffer[], token?: string): { lines: string[]; status: string[]; frames: DriverAnswer[] } {
  const out = { lines: [] as string[], status: [] as string[], frames: [] as DriverAnswer[] };
  const p = new DriverParser(
    {
      line: (l) => out.lines.push(l),
      status: (s) => out.status.push(s),
      frame: (a) => out.frames.push(a),
    },
    token,
  );
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

  describe('contained commands (their stdout streamed back, ended by the token)', () => {
    const token = driverToken();
    const end = (code: number, err: string): string => `\x1eE${token} ${code} ${Buffer.byteLength(err)}\n${err}`;

    it('asks with the token on the request line, and only a 32-hex token', () => {
      expect(driverRequest('exec true', undefined, token).toString()).toBe(`x 9 0 ${token}\nexec true`);
      expect(() => driverRequest('exec true', undefined, 'x; rm -rf /')).toThrow(/32 hex/);
      expect(token).toMatch(/^[0-9a-f]{32}$/);
      expect(driverToken()).not.toBe(token);
    });

    it('takes every byte up to the end line as stdout, whatever it holds and however it is cut', () => {
      // Output that looks like every other kind of line: an R header, an end line with another
      // token, an end line's prefix without its digits, a NUL, no final newline.
      const other = driverToken();
      const out = `a\n\x1eR 9 9 9\n\x1eE${other} 0 0\n\x1eE${token} x y\nACQUIRED\n\0tail`;
      const stream = Buffer.from(`\x1eO\n${out}${end(3, 'oops\n')}RELEASED\n\x1eR 0 2 0\nok\x1eO\n${end(0, '')}`);
      const whole = parse([stream], token);
      expect(whole.frames.map((f) => [f.code, f.stdout.toString(), f.stderr.toString()])).toEqual([
        [3, out, 'oops\n'],
        [0, 'ok', ''],
        [0, '', ''],
      ]);
      expect(whole.lines).toEqual(['RELEASED']);
      expect(
        parse(
          [...stream].map((b) => Buffer.from([b])),
          token,
        ),
      ).toEqual(whole);
      for (const size of [2, 7, 33, 61])
        expect(
          parse(
            Array.from({ length: Math.ceil(stream.length / size) }, (_, i) =>
              stream.subarray(i * size, (i + 1) * size),
            ),
            token,
          ),
        ).toEqual(whole);
    });

    it('a big streamed output is one frame, byte for byte', () => {
      const body = Buffer.alloc(1 << 20);
      for (let i = 0; i < body.length; i++) body[i] = (i * 13 + (i >> 9)) & 0xff;
      const stream = Buffer.concat([Buffer.from('\x1eO\n'), body, Buffer.from(end(0, 'warn')), Buffer.from('BYE\n')]);
      const chunks: Buffer[] = [];
      for (let o = 0; o < stream.length; o += 32_768) chunks.push(stream.subarray(o, o + 32_768));
      const res = parse(chunks, token);
      expect(res.frames).toHaveLength(1);
      expect(res.frames[0]!.stdout.equals(body)).toBe(true);
      expect(res.frames[0]!.stderr.toString()).toBe('warn');
      expect(res.lines).toEqual(['BYE']);
    });

    it('without a token (a session that sends no contained command) an O line starts no stream', () => {
      const res = parse([Buffer.from('\x1eO\nhello\n')]);
      expect([res.frames, res.lines]).toEqual([[], ['hello']]);
    });
  });
});
