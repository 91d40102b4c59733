// Actions per rule and the login alert by mail, end to end (issue 16): the built CLI in the
// sandbox's server namespace with the kernel firewall (ipset), a real sshd, journald, and a real
// exim4 (test/real/exim.ts) as its sendmail. Three actions: `fw-cmd` (a recorder) named by the
// sshd rule, `other` (a recorder, also for logins) for the rules naming none (`actions=other`),
// and `admin-mail` named by the shipped sshd-logins rule alone. A ban by sshd must reach fw-cmd
// only, a ban by another rule `other` only, and a real ssh key login must arrive as one
// well-formed mail (user, address, method, the key's fingerprint from ssh-keygen) and nowhere else.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { decodeWords, parseMail } from '../unit/actions-helpers';
import { DaemonProc, inIpset, writeConfig } from './e2e-daemon';
import { exim, eximLog, messages, type Exim } from './exim';

let sb: Sandbox;
let d: DaemonProc | null = null;

describe('actions chosen per rule, and a login alert through a real MTA', { timeout: 180_000 }, () => {
  let key: string;
  let fingerprint: string;
  let mta: Exim;
  const ran = (n: string) => {
    const f = path.join(sb.dir, `ran-${n}`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
  };

  before(async () => {
    sb = await createSandbox({ sshd: true });
    // exim's own user must reach its mailbox under the sandbox's directory.
    fs.chmodSync(sb.dir, 0o755);
    fs.mkdirSync(path.join(sb.dir, 'mta'));
    mta = exim(path.join(sb.dir, 'mta'));
    key = path.join(sb.dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tallow-test', '-f', key]);
    fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key}.pub`], { encoding: 'utf8' }).split(' ')[1];
    assert.match(fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    // Only inside the sandbox's mount namespace: a private /root holding the key.
    await sb.check(['sh', '-c', `set -e; mount -t tmpfs -o mode=700 tmpfs /root; mkdir -m 700 /root/.ssh; cp ${key}.pub /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys`]);

    const rec = (n: string) => {
      const p = path.join(sb.dir, `rec-${n}`);
      fs.writeFileSync(p, `#!/bin/sh\necho "$*" >> ${sb.dir}/ran-${n}\n`, { mode: 0o755 });
      return p;
    };
    const conf = writeConfig(sb, 'n', [
      'backend=ipset',
      'threshold=1',
      'actions=other',
      `action.fw-cmd.ban_command=${rec('fw-cmd')} {event} {rule} {address}`,
      `action.fw-cmd.notify_command=${rec('fw-cmd')} {event} {rule} {address}`,
      `action.other.ban_command=${rec('other')} {event} {rule} {address}`,
      `action.other.notify_command=${rec('other')} {event} {rule} {address}`,
      'action.admin-mail.mail_to=root@example.org',
      'action.admin-mail.mail_from=tallow@tallow-test.example',
      `action.admin-mail.sendmail=${mta.sendmail}`,
      'action.admin-mail.report=off',
    ]);
    const patterns = path.join(sb.dir, 'n', 'patterns');
    // The shipped sshd rule to fw-cmd; the shipped login rule switched on, to the mail alone.
    fs.writeFileSync(path.join(patterns, 'local.json'), JSON.stringify([{ name: 'sshd', actions: ['fw-cmd'] }, { name: 'sshd-logins', enabled: true, actions: ['admin-mail'] }]));
    // A rule of the administrator's naming no action: actions= applies.
    fs.writeFileSync(path.join(patterns, 'app.json'), JSON.stringify([{ name: 'app', filter: [['SYSLOG_IDENTIFIER=tallow-app']], items: [{ ban: 0, score: 1, pattern: '^bad login from <IP>$' }] }]));
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();
  });

  after(async () => {
    await d?.stop();
    await sb?.destroy();
  });

  it('a ban by sshd reaches only fw-cmd, a ban by app only other; a login only the mail', async () => {
    const attacker = sb.client.extraV4[1];
    const other = sb.client.extraV4[2];
    const source = sb.client.extraV4[0];
    // A wrong root password: the shipped rule's instant ban (30 s), and perhaps a longer one by
    // the threshold if another line scores before the kernel holds the address.
    await sb.failLogin(attacker, 'root');
    await waitFor(`fw-cmd ran\n${d!.output}`, () => ran('fw-cmd').length > 0, 20000);
    await sb.logger('tallow-app', `bad login from ${other}`);
    await waitFor(`other ran\n${d!.output}`, () => ran('other').length > 0, 20000);
    // The firewall bans whatever actions a rule names.
    await waitFor(`both in the kernel set\n${d!.output}`, async () => (await inIpset(sb, attacker)) && (await inIpset(sb, other)), 10000);
    const r = await sb.run(
      ['ssh', '-b', source, '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey', '-o', 'PasswordAuthentication=no',
        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', `root@${sb.server.v4}`, 'true'],
      { net: 'client', timeoutMs: 20000 },
    );
    assert.equal(r.code, 0, `ssh login must succeed: ${r.stderr}`);
    await waitFor(`the login mail\n${d!.output}\nexim: ${eximLog(mta)}`, () => messages(mta.mailbox).length > 0, 30000);
    // A stop delivers everything still queued (a digest waiting included): nothing else may come.
    await d!.stop();
    assert.equal(d!.exit?.code, 0, d!.output);
    // Each saw its own rule's bans (a ban made longer is a second ban event) and nothing else.
    assert.deepEqual([...new Set(ran('fw-cmd'))], [`ban sshd ${attacker}`], d!.output);
    assert.deepEqual([...new Set(ran('other'))], [`ban app ${other}`], d!.output);
    const all = messages(mta.mailbox);
    assert.equal(all.length, 1, `one mail, the login alert:\n${all.join('\n----\n')}`);

    const m = parseMail(all[0]);
    assert.match(m.headers.get('received') ?? '', /by tallow-test\.example with local \(Exim 4\.\d+\)/);
    assert.equal(m.headers.get('envelope-to'), 'root@example.org');
    assert.equal(m.headers.get('from'), 'tallow@tallow-test.example');
    assert.equal(m.headers.get('to'), 'root@example.org');
    assert.equal(m.headers.get('mime-version'), '1.0');
    assert.equal(m.headers.get('auto-submitted'), 'auto-generated');
    assert.ok(Math.abs(Date.parse(m.headers.get('date')!) - Date.now()) < 600_000, m.headers.get('date'));
    assert.equal(decodeWords(m.headers.get('subject')!), `login: root from ${source} on ${os.hostname()}`);
    // The table's row, column by column, in the text part; the same values in the HTML part.
    const row = m.text.split('\n').find((l) => l.includes(source));
    assert.ok(row, m.text);
    assert.deepEqual(row!.split(/ {2,}/).slice(1), ['root', source, 'publickey', fingerprint, 'sshd-logins']);
    assert.match(row!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}/);
    for (const v of ['root', source, 'publickey', fingerprint, 'sshd-logins']) assert.ok(m.html.includes(`>${v}</td>`), `${v} in the HTML part`);
  });
});
