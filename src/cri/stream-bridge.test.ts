import { existsSync, readdirSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { openStreamBridge } from './stream-bridge.js';

/** A far end that answers every chunk with `<tag>:<chunk>`. */
function echo(tag: string): Promise<Duplex> {
  const d: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      d.push(`${tag}:${chunk.toString()}`);
      cb();
    },
  });
  return Promise.resolve(d);
}

function ask(socketPath: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath, () => s.write(text));
    s.once('data', (b) => {
      resolve(b.toString());
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('openStreamBridge', () => {
  it('puts the bridges open at once in one private directory, a socket each, and removes it with the last', async () => {
    const bridges = await Promise.all(['a', 'b', 'c'].map((t) => openStreamBridge(() => echo(t))));
    const dirs = new Set(bridges.map((b) => dirname(b.socketPath)));
    expect(dirs.size).toBe(1);
    const dir = [...dirs][0]!;
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(new Set(bridges.map((b) => b.socketPath)).size).toBe(3);
    expect(readdirSync(dir).sort()).toHaveLength(3);

    // Each socket reaches its own far end.
    expect(await ask(bridges[1]!.socketPath, 'hi')).toBe('b:hi');
    expect(await ask(bridges[2]!.socketPath, 'yo')).toBe('c:yo');

    // Closing one removes its socket and keeps the directory for the others.
    await bridges[0]!.close();
    expect(existsSync(bridges[0]!.socketPath)).toBe(false);
    expect(existsSync(dir)).toBe(true);
    expect(await ask(bridges[1]!.socketPath, 'again')).toBe('b:again');

    await Promise.all(bridges.map((b) => b.close()));
    expect(existsSync(dir)).toBe(false);

    // A bridge opened after that gets a new directory.
    const later = await openStreamBridge(() => echo('d'));
    expect(existsSync(later.socketPath)).toBe(true);
    expect(await ask(later.socketPath, 'x')).toBe('d:x');
    await later.close();
    expect(existsSync(dirname(later.socketPath))).toBe(false);
  });

  it('closing a bridge twice releases its directory once', async () => {
    const [a, b] = await Promise.all([openStreamBridge(() => echo('a')), openStreamBridge(() => echo('b'))]);
    await a!.close();
    await a!.close();
    // b still holds the directory: a's second close did not count as b's.
    expect(existsSync(b!.socketPath)).toBe(true);
    expect(await ask(b!.socketPath, 'still')).toBe('b:still');
    await b!.close();
    expect(existsSync(dirname(b!.socketPath))).toBe(false);
  });
});
