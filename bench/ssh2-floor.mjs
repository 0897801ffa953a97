/* global process */
// The ssh2 floor (issue 21): what any ssh2-based tool pays to reach a fleet, in its own Node process
// like trustplay's CLI: start Node, load ssh2 and the key, then for every host at once one
// connection (handshake + publickey auth), one `true` exec and its exit status. Host keys are
// checked against the fleet's known_hosts lines, as trustplay checks them.
// Usage: node ssh2-floor.mjs KEY_FILE KNOWN_HOSTS ADDRESS:PORT... ; prints {"ok":N,"failed":M}.
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

const [keyFile, knownHostsFile, ...targets] = process.argv.slice(2);
const key = readFileSync(keyFile);
const known = new Set(
  readFileSync(knownHostsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').slice(0, 3).join(' ')),
);

function one(target) {
  const [address, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const c = new ssh2.Client();
    const fail = () => {
      c.end();
      resolve(false);
    };
    c.on('error', fail);
    c.on('ready', () => {
      c.setNoDelay(true);
      c.exec('true', (err, ch) => {
        if (err) return fail();
        let code = -1;
        ch.on('exit', (x) => (code = x));
        ch.on('close', () => {
          c.end();
          resolve(code === 0);
        });
        ch.resume();
        ch.stderr.resume();
      });
    });
    c.connect({
      host: address,
      port,
      username: 'root',
      privateKey: key,
      readyTimeout: 30_000,
      hostVerifier: (k) => {
        const parsed = ssh2.utils.parseKey(k);
        const line = `[${address}]:${port} ${parsed.type} ${k.toString('base64')}`;
        return known.has(line);
      },
    });
  });
}

const results = await Promise.all(targets.map(one));
process.stdout.write(
  `${JSON.stringify({ ok: results.filter(Boolean).length, failed: results.filter((r) => !r).length })}\n`,
);
