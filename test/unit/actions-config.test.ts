// The action keys of tallow.conf: what a good file gives, each bad line refused with `file:line:`
// and what is wrong, and tallow.conf(5) documenting every key an action accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { defaultActions } from '../../src/actions';
import { ConfigError, parseConfig } from '../../src/config';

test('actions: a command, a webhook and a mail, with defaults and a selection', () => {
  const c = parseConfig(
    [
      'expires=600',
      "action.ufw.ban_command=/usr/sbin/ufw insert 1 deny from %s comment 'tallow {rule}'",
      'action.ufw.unban_command=/usr/sbin/ufw delete deny from {address}',
      'action.ufw.concurrency=2',
      'action.ufw.timeout=1m',
      'action.ops.url=https://hooks.example.org/tallow?x=1',
      'action.ops.on=ban',
      'action.ops.secret_file=/etc/tallow/ops.secret',
      'action.admin.mail_to=root, alice@example.org',
      'action.admin.digest=30m',
      'actions=ufw,admin',
      '',
    ].join('\n'),
    '/etc/tallow.conf',
  );
  assert.deepEqual(c.actions, ['ufw', 'admin']);
  const [ufw, ops, admin] = c.actionDefs!;
  assert.deepEqual(ufw, { kind: 'command', name: 'ufw', where: '/etc/tallow.conf:2', queue: 100_000, ban: ['/usr/sbin/ufw', 'insert', '1', 'deny', 'from', '%s', 'comment', 'tallow {rule}'], unban: ['/usr/sbin/ufw', 'delete', 'deny', 'from', '{address}'], concurrency: 2, batch: 0, restored: false, timeoutMs: 60_000 });
  assert.deepEqual(ops, { kind: 'webhook', name: 'ops', where: '/etc/tallow.conf:6', queue: 100_000, url: 'https://hooks.example.org/tallow?x=1', on: ['ban'], bearerFile: '', secretFile: '/etc/tallow/ops.secret', caFile: '', batch: 500, format: 'tallow', timeoutMs: 10_000 });
  assert.deepEqual(admin, { kind: 'mail', name: 'admin', where: '/etc/tallow.conf:9', queue: 100_000, on: ['ban', 'notify'], to: ['root', 'alice@example.org'], from: '', sendmail: ['/usr/sbin/sendmail'], digestMs: 30 * 60_000, timeoutMs: 60_000, report: { hour: 6, minute: 0 }, smtp: null, starttls: 'required', user: '', passwordFile: '', caFile: '' });
  assert.deepEqual(defaultActions(c).map((a) => a.name), ['ufw', 'admin']);
  // Without actions=: every action defined; actions=none: none.
  assert.deepEqual(defaultActions(parseConfig('action.a.mail_to=root\naction.b.url=http://127.0.0.1:8080/\n', 'x')).map((a) => a.name), ['a', 'b']);
  assert.deepEqual(defaultActions(parseConfig('action.a.mail_to=root\nactions=none\n', 'x')), []);
  assert.deepEqual(parseConfig('', 'x').actionDefs, []);
});

test('actions: a mail action by SMTP: the server forms, STARTTLS, AUTH user and password file', () => {
  const smtp = (lines: string[]) => {
    const a = parseConfig(['action.m.mail_to=root@example.org', ...lines, ''].join('\n'), 't.conf').actionDefs![0];
    assert.equal(a.kind, 'mail');
    return a.kind === 'mail' ? { smtp: a.smtp, starttls: a.starttls, user: a.user, passwordFile: a.passwordFile, caFile: a.caFile } : null;
  };
  assert.deepEqual(smtp(['action.m.smtp=mail.example.org:587', 'action.m.user=tallow', 'action.m.password_file=/etc/tallow/smtp.pw', 'action.m.ca_file=/etc/tallow/ca.pem', 'action.m.starttls=opportunistic']), {
    smtp: { host: 'mail.example.org', port: 587, tls: false, url: 'smtp://mail.example.org:587' }, starttls: 'opportunistic', user: 'tallow', passwordFile: '/etc/tallow/smtp.pw', caFile: '/etc/tallow/ca.pem',
  });
  assert.deepEqual(smtp(['action.m.smtp=smtp://192.0.2.2'])!.smtp, { host: '192.0.2.2', port: 587, tls: false, url: 'smtp://192.0.2.2:587' });
  assert.deepEqual(smtp(['action.m.smtp=smtps://mail.example.org'])!.smtp, { host: 'mail.example.org', port: 465, tls: true, url: 'smtps://mail.example.org:465' });
  assert.deepEqual(smtp(['action.m.smtp=[2001:db8::25]:2525'])!.smtp, { host: '2001:db8::25', port: 2525, tls: false, url: 'smtp://[2001:db8::25]:2525' });
  assert.equal(smtp(['action.m.smtp=h:25'])!.starttls, 'required');
  assert.equal(smtp([])!.smtp, null);
});

test('actions: every bad line is refused with file:line and what is wrong', () => {
  const bad: [string, RegExp][] = [
    ['action.ufw=/usr/sbin/ufw', /^t\.conf:1: 'action\.ufw': expected action\.NAME\.KEY/],
    ['action.Big.url=http://x/', /^t\.conf:1: action\.Big\.url: an action's name is 1 to 32 of a-z 0-9/],
    ['action.x.colour=red', /^t\.conf:1: action\.x\.colour: unknown key 'colour' \(an action's keys: .*ban_command/],
    ['action.x.url=', /^t\.conf:1: action\.x\.url: empty value/],
    ['action.x.timeout=5s', /^t\.conf:1: action\.x: what does it do\? give it ban_command\/unban_command \(a command\), url \(a webhook\) or mail_to/],
    ['action.x.url=http://h/\naction.x.mail_to=root', /^t\.conf:2: action\.x\.mail_to: action\.x is already a webhook action/],
    ['action.x.url=http://h/\naction.x.url=http://i/', /^t\.conf:2: action\.x\.url: given twice \(first on line 1\)/],
    ['action.x.url=http://h/\naction.x.concurrency=3', /^t\.conf:2: action\.x\.concurrency: not a key of a webhook action \(its keys: .*url/],
    ['action.x.ban_command=ufw deny {address}', /^t\.conf:1: action\.x\.ban_command: the program must be an absolute path/],
    ['action.x.ban_command=/bin/echo {adress}', /^t\.conf:1: action\.x\.ban_command: unknown placeholder \{adress\} \(known: \{address\}/],
    ['action.x.ban_command=/bin/echo "{address}', /^t\.conf:1: action\.x\.ban_command: unclosed "/],
    ['action.x.ban_command=/bin/echo {address}\naction.x.batch=100', /^t\.conf:1: action\.x\.ban_command: \{address\} differs from ban to ban: with batch= the addresses come on standard input/],
    ['action.x.ban_command=/bin/echo %s\naction.x.concurrency=0', /^t\.conf:2: action\.x\.concurrency: expected a whole number from 1 to 64, got '0'/],
    ['action.x.url=ftp://h/', /^t\.conf:1: action\.x\.url: expected an http:\/\/ or https:\/\/ URL/],
    ['action.x.url=https://u:pw@h/', /^t\.conf:1: action\.x\.url: no user or password in the URL/],
    ['action.x.url=https://h/\naction.x.on=ban,kick', /^t\.conf:2: action\.x\.on: expected ban, unban or ban,unban/],
    ['action.x.url=https://h/\naction.x.bearer_file=token', /^t\.conf:2: action\.x\.bearer_file: expected an absolute path/],
    ['action.x.url=https://h/\naction.x.format=xml', /^t\.conf:2: action\.x\.format: expected tallow/],
    ['action.x.mail_to=root, "Eve" <eve@example.org>', /^t\.conf:1: action\.x\.mail_to: expected mail addresses separated by commas .*got '"Eve" <eve@example\.org>'/],
    ['action.x.mail_to=root\naction.x.mail_from=a@b\nBcc: x@y', /^t\.conf:3: expected key=value/],
    ['action.x.mail_to=root\naction.x.sendmail=/usr/sbin/sendmail {address}', /^t\.conf:2: action\.x\.sendmail: \{address\} differs from ban to ban|^t\.conf:2: action\.x\.sendmail: no placeholders/],
    ['action.x.mail_to=root\naction.x.digest=forever', /^t\.conf:2: action\.x\.digest: expected a duration/],
    ['action.x.mail_to=root\nactions=x,y', /^t\.conf:2: actions: no action named 'y' \(defined: x;/],
    ['actions=a\nactions=b', /^t\.conf:2: actions: given twice/],
    // SMTP (the optional transport of a mail action)
    ['action.x.mail_to=a@b\naction.x.smtp=mail.example.org', /^t\.conf:2: action\.x\.smtp: expected host:port, smtp:\/\/host\[:port\] \(STARTTLS, port 587\) or smtps:\/\/host\[:port\] \(TLS, port 465\), got 'mail\.example\.org'/],
    ['action.x.mail_to=a@b\naction.x.smtp=http://h:25', /^t\.conf:2: action\.x\.smtp: expected host:port/],
    ['action.x.mail_to=a@b\naction.x.user=tallow', /^t\.conf:2: action\.x\.user: only for mail sent by SMTP: give smtp=host:port too/],
    ['action.x.mail_to=a@b\naction.x.smtp=h:587\naction.x.user=tallow', /^t\.conf:3: action\.x\.user: SMTP AUTH needs both user and password_file/],
    ['action.x.mail_to=a@b\naction.x.smtp=h:587\naction.x.password_file=/etc/tallow/pw', /^t\.conf:3: action\.x\.password_file: SMTP AUTH needs both user and password_file/],
    ['action.x.mail_to=a@b\naction.x.smtp=smtps://h\naction.x.starttls=required', /^t\.conf:3: action\.x\.starttls: smtps:\/\/h:465 is TLS from the start; starttls is for smtp:\/\//],
    ['action.x.mail_to=a@b\naction.x.smtp=h:25\naction.x.starttls=maybe', /^t\.conf:3: action\.x\.starttls: expected required \(the default: no mail in clear\), opportunistic/],
    ['action.x.mail_to=a@b\naction.x.smtp=h:25\naction.x.sendmail=/usr/sbin/sendmail', /^t\.conf:3: action\.x\.sendmail: smtp= is given too: one way to send/],
    ['action.x.mail_to=a@b\naction.x.smtp=h:25\naction.x.password_file=pw\naction.x.user=u', /^t\.conf:3: action\.x\.password_file: expected an absolute path/],
  ];
  for (const [text, re] of bad) {
    assert.throws(
      () => parseConfig(text + '\n', 't.conf'),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, `${text}: ${e}`);
        assert.match(e.message, re, text);
        assert.equal(e.exitCode, 78);
        return true;
      },
      text,
    );
  }
});

test('tallow.conf(5) documents every key of an action, and its examples parse', () => {
  const page = path.resolve(__dirname, '..', '..', '..', 'man', 'tallow.conf.5');
  const r = spawnSync('mandoc', ['-T', 'utf8', '-O', 'width=200', page], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const text = r.stdout.replace(/.\x08/g, '');
  const section = text.slice(text.indexOf('\nACTIONS'), text.indexOf('\nEXAMPLES'));
  assert.ok(section.length > 100, 'an ACTIONS section before EXAMPLES');
  const documented = new Set([...section.matchAll(/^ {7}action\.NAME\.([a-z_]+)=/gm)].map((m) => m[1]));
  const m = /an action's keys: ([^)]*)\)/.exec((() => {
    try {
      parseConfig('action.x.no_such_key=1\n', 'x');
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  })());
  assert.ok(m);
  assert.deepEqual([...documented].sort(), m![1].split(', ').sort());
  // Every action.* and actions= line in the page's examples, taken together per example block, parses.
  const examples = text.slice(text.indexOf('\nACTIONS'));
  const lines = [...examples.matchAll(/^\s+((?:action\.[a-z0-9_-]+\.[a-z_]+|actions)=.+)$/gm)].map((x) => x[1].trim());
  assert.ok(lines.length >= 8, `found ${lines.length} example lines`);
  const byName = new Map<string, string[]>();
  for (const l of lines) {
    const name = l.startsWith('actions=') ? '' : l.split('.')[1];
    byName.set(name, [...(byName.get(name) ?? []), l]);
  }
  for (const [name, ls] of byName) if (name) parseConfig(ls.join('\n') + '\n', `man:${name}`);
});
