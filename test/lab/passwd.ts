/**
 * /etc/passwd for a namespace (a lab node, a test sshd): this machine's, with root logging in to
 * `rootHome` with /bin/sh (this machine's root shell start-up files are slow), and always with
 * sshd's privilege-separation user. The copy is taken when the namespace starts; a lab started in
 * the moment between openssh-server's files landing and its postinst adding the `sshd` user (or on
 * a machine where that user lives elsewhere, e.g. in systemd-sysusers' database only) got a
 * passwd without it, and sshd refused to start: "Privilege separation user sshd does not exist".
 */
import { readFileSync } from 'node:fs';

export function namespacePasswd(rootHome: string): string[] {
  const lines = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (l.startsWith('root:') ? `root:x:0:0:root:${rootHome}:/bin/sh` : l));
  if (!lines.some((l) => l.startsWith('sshd:'))) {
    const used = new Set(lines.map((l) => Number(l.split(':')[2])));
    let uid = 100;
    while (used.has(uid)) uid++;
    // 65534 is nogroup: sshd only needs the user to exist and own nothing.
    lines.push(`sshd:x:${uid}:65534::/run/sshd:/usr/sbin/nologin`);
  }
  return lines;
}
