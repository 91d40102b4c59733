// Mail by SMTP, end to end (issue 16): the built daemon in the sandbox's server namespace (ipset,
// journald) sends its ban mails by SMTP to a real exim4 (test/real/exim.ts) listening on
// 192.0.2.2:587 in the client namespace: STARTTLS with a self-signed certificate made by openssl
// (trusted through ca_file), AUTH PLAIN offered only over TLS. Beside it, an action with a wrong
// password and one whose server does not answer: each logs why, naming itself, and bans go on.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { decodeWords, parseMail } from '../unit/actions-helpers';
import { DaemonProc, inIpset, writeConfig } from './e2e-daemon';
import { exim, eximLog, messages, type Exim } from './exim';

const USER = 'tallow';
const PASSWORD = 'c0rrect horse';
const PORT = 587;

let sb: Sandbox;
let d: DaemonProc | null = null;

describe('mail by SMTP (STARTTLS, AUTH) to a real exim in another namespace', { timeout: 180_000 }, () => {
  let mta: Exim;

  async function attack(addresses: string[]): Promise<void> {
    const file = path.join(sb.dir, `lines-${addresses[0]}`);
    fs.writeFileSync(file, addresses.map((a) => `bad login from ${a}\n`).join(''));
    await sb.check(['logger', '-t', 'tallow-app', '-f', file]);
  }

  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
    // exim's own user must reach its mailbox and its key under the sandbox's directory.
    fs.chmodSync(sb.dir, 0o755);
    fs.mkdirSync(path.join(sb.dir, 'mta'));
    mta = exim(path.join(sb.dir, 'mta'), { host: sb.client.v4, port: PORT, user: USER, password: PASSWORD });
    const server = sb.spawn(mta.smtp!.argv, { net: 'client' });
    let said = '';
    server.stderr!.on('data', (b: Buffer) => (said += b.toString()));
    server.stdout!.resume();
    await waitFor(`exim listening on ${sb.client.v4}:${PORT} (${said})`, async () => {
      if (server.exitCode !== null) throw new Error(`exim exited ${server.exitCode}: ${said} ${eximLog(mta)}`);
      return (await sb.run(['ss', '-Hltn', `sport = :${PORT}`], { net: 'client' })).stdout.includes(`:${PORT}`);
    });

    const good = path.join(sb.dir, 'smtp.password');
    const wrong = path.join(sb.dir, 'wrong.password');
    fs.writeFileSync(good, `${PASSWORD}\n`, { mode: 0o600 });
    fs.writeFileSync(wrong, 'not-the-password\n', { mode: 0o600 });
    const smtp = (name: string, server: string, password: string, digest: string) => [
      `action.${name}.mail_to=root@example.org`,
      `action.${name}.mail_from=tallow@tallow-test.example`,
      `action.${name}.smtp=${server}`,
      `action.${name}.user=${USER}`,
      `action.${name}.password_file=${password}`,
      `action.${name}.ca_file=${mta.smtp!.cert}`,
      `action.${name}.digest=${digest}`,
      `action.${name}.timeout=5`,
      `action.${name}.report=off`,
    ];
    const conf = writeConfig(sb, 's', [
      'backend=ipset',
      'threshold=1',
      ...smtp('admin', `smtp://${sb.client.v4}:${PORT}`, good, '3s'),
      ...smtp('badpw', `${sb.client.v4}:${PORT}`, wrong, '15m'),
      // A client address where nothing listens: the connection is refused.
      ...smtp('gone', `smtp://${sb.client.extraV4[0]}:2525`, good, '15m'),
    ]);
    fs.writeFileSync(path.join(sb.dir, 's', 'patterns', 'app.json'), JSON.stringify([{ name: 'app', filter: [['SYSLOG_IDENTIFIER=tallow-app']], items: [{ ban: 0, score: 1, pattern: '^bad login from <IP>$' }] }]));
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();
  });

  after(async () => {
    await d?.stop();
    await sb?.destroy();
  });

  it('the first ban at once and then a digest arrive by SMTP over STARTTLS, authenticated, well-formed', async () => {
    assert.ok(d!.has(new RegExp(`action\\.admin: mail to root@example\\.org on ban and notify through SMTP smtp://${sb.client.v4.replace(/\./g, '\\.')}:587, STARTTLS required, as tallow`)), d!.output);
    await attack(['203.0.113.50']);
    await waitFor(`the first mail\n${d!.output}\nexim: ${eximLog(mta)}`, () => messages(mta.mailbox).length >= 1, 20000);
    const rest = ['203.0.113.51', '203.0.113.52', '2001:db8:5::53', '198.51.100.54'];
    await attack(rest);
    await waitFor(`the digest\n${d!.output}\nexim: ${eximLog(mta)}`, () => messages(mta.mailbox).length >= 2, 20000);
    const ms = messages(mta.mailbox).map(parseMail);
    for (const m of ms) {
      // esmtpsa: ESMTP, TLS, authenticated, from the server's namespace address.
      assert.match(m.headers.get('received') ?? '', new RegExp(`from \\[${sb.server.v4.replace(/\./g, '\\.')}\\].* by tallow-test\\.example with esmtpsa +\\(TLS1\\.[23]\\)`));
      assert.equal(m.headers.get('envelope-to'), 'root@example.org');
      assert.equal(m.headers.get('return-path'), '<tallow@tallow-test.example>');
      assert.equal(m.headers.get('from'), 'tallow@tallow-test.example');
      assert.equal(m.headers.get('mime-version'), '1.0');
    }
    assert.equal(decodeWords(ms[0].headers.get('subject')!), `tallow on ${os.hostname()}: 1 ban: 203.0.113.50 (app)`);
    assert.equal(decodeWords(ms[1].headers.get('subject')!), `tallow on ${os.hostname()}: 4 bans`);
    const listed = (m: { text: string }) => [...m.text.matchAll(/^\S+ \S+ +ban +(\S+)/gm)].map((x) => x[1]);
    assert.deepEqual([...listed(ms[0]), ...listed(ms[1])], ['203.0.113.50', ...rest]);
    // exim logged the authenticated login of our user.
    assert.match(eximLog(mta), new RegExp(`A=plain:${USER}`));
  });

  it('a wrong password and a server that does not answer: one clear line each, naming the action; bans go on', async () => {
    await waitFor(`badpw's error\n${d!.output}`, () => d!.has(/action\.badpw: SMTP smtp:\/\/192\.0\.2\.2:587 as tallow: authentication failed \(EAUTH\): 535 Incorrect authentication data; \d+ events wait, next try in 60 s/), 20000);
    await waitFor(`gone's error\n${d!.output}`, () => d!.has(new RegExp(`action\\.gone: SMTP smtp://${sb.client.extraV4[0].replace(/\./g, '\\.')}:2525 as tallow: cannot connect \\(ESOCKET\\): connect ECONNREFUSED [0-9.:]+; \\d+ events wait, next try in 60 s`)), 20000);
    // Not one stack trace; the daemon bans on.
    assert.ok(!d!.has(/^\s+at /), d!.output);
    await attack(['203.0.113.60']);
    await waitFor(`a later ban in the kernel\n${d!.output}`, () => inIpset(sb, '203.0.113.60'), 20000);
    assert.equal(d!.exit, null);
  });
});
