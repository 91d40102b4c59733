// `tallow status|list|rules|ban|unban`: output for people and scripts, and the exit status for each
// way of failing (not running, permission denied, refused, bad usage).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ControlServer, type ControlResponse } from '../../src/control';
import type { ControlRequest } from '../../src/control-requests';
import type { ListItem, RuleInfo, StatusResult } from '../../src/control-results';
import { formatDuration, formatList, formatStatus } from '../../src/ctl-format';
import { ctlRun, EXIT_NOT_RUNNING, EXIT_PERMISSION, EXIT_REFUSED, EXIT_USAGE, EXIT_PROTOCOL, EXIT_CONFIG, type Subcommand } from '../../src/ctl';

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-ctl-${process.pid}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

async function run(sub: Subcommand, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await ctlRun(sub, args, { out: (s) => (out += s), err: (s) => (err += s), timeoutMs: 2000 });
  return { code, out, err };
}

const STATUS: StatusResult = {
  version: '0.1.0', pid: 4242, uptime: 3725, backend: 'ipset', entries: 120345, matches: 77, bansActive: 3,
  records: 41, cursor: 's=1;i=2', config: '/etc/tallow.conf', stateFile: '/var/lib/tallow/state.json', lastSave: 0,
};
const LIST: ListItem[] = [
  { address: '203.0.113.9', family: 4, remaining: 125, score: 1.2, count: 6, pattern: 'sshd.json#1' },
  { address: '2001:db8::77', family: 6, remaining: 3599, score: 0, count: 0, pattern: 'manual' },
  { address: '198.51.100.4', family: 4, remaining: 9, score: 0.4, count: 2, pattern: null },
];

const RULES: RuleInfo[] = [
  {
    name: 'sshd', enabled: true, where: '/usr/share/tallow/patterns/sshd.json', filter: '_EXE=/usr/sbin/sshd _UID=0 | SYSLOG_IDENTIFIER=sshd _UID=0',
    threshold: 1, findtime: 0, bantime: 3600, ports: 'all', scope: '', prefix: { 4: 32, 6: 128 }, pool: '',
    matches: 12, bans: 3, bansActive: 2, top: [{ address: '203.0.113.9', score: 0.6, count: 3, banned: false }],
  },
  {
    name: 'postfix', enabled: true, where: '/etc/tallow/postfix.json (block 1)', filter: '_SYSTEMD_UNIT=postfix@-.service',
    threshold: 3, findtime: 600, bantime: 86400, ports: '25,465,587/tcp', scope: 'p25_465_587t_net', prefix: { 4: 24, 6: 64 }, pool: 'postfix',
    matches: 7, bans: 1, bansActive: 1,
    top: [{ address: '2001:db8::/64', score: 3, count: 3, banned: true }, { address: '198.51.100.0/24', score: 1.5, count: 2, banned: false }],
  },
];

let reloadFails = false;

async function daemon(t: { after(fn: () => Promise<void> | void): void }, dir: string): Promise<{ sock: string; seen: ControlRequest[] }> {
  const sock = path.join(dir, 'tallow.sock');
  const seen: ControlRequest[] = [];
  const server = await ControlServer.listen(sock, async (req): Promise<ControlResponse> => {
    seen.push(req);
    switch (req.cmd) {
      case 'status': return { ok: true, result: STATUS };
      case 'list': return { ok: true, result: req.rule ? [] : LIST };
      case 'ban':
        if (req.rule) return { ok: true, result: { address: req.address, family: 4, seconds: req.seconds ?? 600, rule: req.rule, ports: '22/tcp' } };
        return req.address === '192.0.2.66' ? { ok: false, error: '192.0.2.66 is allowlisted' } : { ok: true, result: { address: req.address, family: 4, seconds: req.seconds ?? 3600 } };
      case 'unban':
        if (req.all) return { ok: true, result: { all: true, lifted: 3, targets: 2 } };
        if (req.address === '198.51.100.3') return { ok: true, result: { address: req.address, family: 4, wasBanned: true, lifted: ['22', '25,465,587/tcp'] } };
        return { ok: true, result: { address: req.address, family: 4, wasBanned: req.address === '203.0.113.9' || req.address === '2001:db8::/64', lifted: req.address === '203.0.113.9' ? ['all'] : [] } };
      case 'metrics': return { ok: true, result: { text: '# HELP tallow_x x\n# TYPE tallow_x gauge\ntallow_x 1\n' } };
      case 'rules': return req.name === undefined || req.name === 'postfix' ? { ok: true, result: req.name ? RULES.slice(1) : RULES } : { ok: false, error: `no rule named "${req.name}" (rules: sshd, postfix)` };
      case 'history': return { ok: false, error: 'the history is off' };
      case 'allow': return { ok: false, error: 'not in this test' };
      case 'reload':
        return reloadFails
          ? { ok: false, error: 'reload refused, still running the previous configuration: /etc/tallow.conf:3: unknown key "treshold"', exitCode: 78 }
          : { ok: true, result: { config: '/etc/tallow.conf', changes: ['rule postfix enabled'], restart: ['socket'], dropped: ['sshd.bantime'] } };
      case 'get': return { ok: true, result: { key: req.key, rule: 'sshd', setting: 'bantime', value: 3600, runtime: false, shared: true } };
      case 'set': return { ok: true, result: { key: req.key, rule: 'sshd', setting: 'threshold', value: req.value, runtime: true, shared: false, previous: 1, changes: ['rule sshd policy changed: threshold 1 -> 2.5, scores shared -> its own'] } };
      default: return { ok: false, error: `not in this fake: ${(req as { cmd: string }).cmd}` };
    }
  });
  t.after(() => server.close());
  return { sock, seen };
}

test('status prints aligned key: value lines', async (t) => {
  const { sock } = await daemon(t, tmpdir(t));
  const r = await run('status', ['--socket', sock]);
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  assert.equal(
    r.out,
    [
      'version:        0.1.0',
      'pid:            4242',
      'uptime:         1h 2m 5s',
      'backend:        ipset',
      'entries read:   120345',
      'matches:        77',
      'bans active:    3',
      'records:        41',
      'journal cursor: s=1;i=2',
      'config:         /etc/tallow.conf',
      'state file:     /var/lib/tallow/state.json',
      'last saved:     never',
      '',
    ].join('\n'),
  );
});

test('status --json prints the whole answer as JSON; metrics prints the text as given', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  const r = await run('status', ['--socket', sock, '--json']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), STATUS);
  const m = await run('metrics', ['--socket', sock]);
  assert.equal(m.code, 0, m.err);
  assert.equal(m.out, '# HELP tallow_x x\n# TYPE tallow_x gauge\ntallow_x 1\n');
  assert.deepEqual(seen.map((q) => q.cmd), ['status', 'metrics']);
});

test('list prints an aligned table, longest ban first; --json gives the items', async (t) => {
  const { sock } = await daemon(t, tmpdir(t));
  const r = await run('list', ['--socket', sock]);
  assert.equal(r.code, 0);
  assert.equal(
    r.out,
    [
      'ADDRESS       REMAINING  SCORE  COUNT  PATTERN',
      '2001:db8::77    59m 59s   0.00      0  manual',
      '203.0.113.9       2m 5s   1.20      6  sshd.json#1',
      '198.51.100.4         9s   0.40      2  -',
      '',
    ].join('\n'),
  );
  const j = await run('list', ['--json', `--socket=${sock}`]);
  assert.equal(j.code, 0);
  assert.deepEqual(JSON.parse(j.out), LIST);
});

test('ban and unban confirm; the daemon refusing gives exit 1 and its message', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  let r = await run('ban', ['203.0.113.9', '--time', '600', '--socket', sock]);
  assert.deepEqual(r, { code: 0, out: 'banned 203.0.113.9 for 600 s (10m 0s)\n', err: '' });
  r = await run('ban', ['--socket', sock, '2001:DB8::1']);
  assert.deepEqual(r, { code: 0, out: 'banned 2001:db8::1 for 3600 s (1h 0m 0s)\n', err: '' });
  r = await run('unban', ['203.0.113.9', '--socket', sock]);
  assert.deepEqual(r, { code: 0, out: 'unbanned 203.0.113.9; its record is cleared\n', err: '' });
  r = await run('unban', ['198.51.100.1', '--socket', sock]);
  assert.deepEqual(r, { code: 0, out: '198.51.100.1 was not banned; its record (if any) is cleared\n', err: '' });
  r = await run('unban', ['198.51.100.3', '--socket', sock]);
  assert.deepEqual(r, { code: 0, out: 'unbanned 198.51.100.3 (ports 22; ports 25,465,587/tcp); its record is cleared\n', err: '' });
  // A network is lifted by its text, host bits cleared before it is sent.
  r = await run('unban', ['2001:db8::5/64', '--socket', sock]);
  assert.deepEqual(r, { code: 0, out: 'unbanned 2001:db8::/64; its record is cleared\n', err: '' });
  r = await run('ban', ['192.0.2.66', '--socket', sock]);
  assert.deepEqual(r, { code: EXIT_REFUSED, out: '', err: 'tallow ban: 192.0.2.66 is allowlisted\n' });
  assert.deepEqual(seen, [
    { cmd: 'ban', address: '203.0.113.9', seconds: 600 },
    { cmd: 'ban', address: '2001:db8::1' },
    { cmd: 'unban', address: '203.0.113.9' },
    { cmd: 'unban', address: '198.51.100.1' },
    { cmd: 'unban', address: '198.51.100.3' },
    { cmd: 'unban', address: '2001:db8::/64' },
    { cmd: 'ban', address: '192.0.2.66' },
  ]);
});

test('rules prints one block per rule (policy, counters, top addresses); NAME asks for one; --json gives the items', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  const r = await run('rules', ['--socket', sock]);
  assert.equal(r.err, '');
  assert.equal(r.code, 0);
  const postfix = [
    'rule postfix: enabled',
    '  defined in:  /etc/tallow/postfix.json (block 1)',
    '  filter:      _SYSTEMD_UNIT=postfix@-.service',
    '  threshold:   3',
    '  findtime:    600 s (10m 0s)',
    '  bantime:     86400 s (1d 0h 0m)',
    '  ports:       25,465,587/tcp',
    '  target:      networks /24 (IPv4), /64 (IPv6)',
    '  matches:     7',
    '  bans made:   1',
    '  bans active: 1',
    '  top addresses:',
    '     2001:db8::/64    3.00  3 matches  banned',
    '     198.51.100.0/24  1.50  2 matches',
  ];
  assert.equal(
    r.out,
    [
      'rule sshd: enabled',
      '  defined in:  /usr/share/tallow/patterns/sshd.json',
      '  filter:      _EXE=/usr/sbin/sshd _UID=0 | SYSLOG_IDENTIFIER=sshd _UID=0',
      "  threshold:   1 (tallow.conf's shared score)",
      '  findtime:    off (scores fall only when a record is pruned)',
      '  bantime:     3600 s (1h 0m 0s)',
      '  ports:       all',
      '  target:      the address',
      '  matches:     12',
      '  bans made:   3',
      '  bans active: 2',
      '  top addresses:',
      '     203.0.113.9  0.60  3 matches',
      ...postfix,
      '',
    ].join('\n'),
  );
  const one = await run('rules', ['postfix', '--socket', sock]);
  assert.deepEqual(one, { code: 0, out: [...postfix, ''].join('\n'), err: '' });
  const j = await run('rules', ['--json', '--socket', sock, 'postfix']);
  assert.equal(j.code, 0);
  assert.deepEqual(JSON.parse(j.out), [RULES[1]]);
  const none = await run('rules', ['nginx', '--socket', sock]);
  assert.deepEqual(none, { code: EXIT_REFUSED, out: '', err: 'tallow rules: no rule named "nginx" (rules: sshd, postfix)\n' });
  assert.deepEqual(seen, [{ cmd: 'rules' }, { cmd: 'rules', name: 'postfix' }, { cmd: 'rules', name: 'postfix' }, { cmd: 'rules', name: 'nginx' }]);
  const extra = await run('rules', ['sshd', 'postfix', '--socket', sock]);
  assert.equal(extra.code, EXIT_USAGE);
  assert.match(extra.err, /unexpected argument "postfix"/);
});

test('list with rules: RULE and PORTS columns, networks as targets, one address in two scopes', () => {
  const items: ListItem[] = [
    { address: '198.51.100.3', family: 4, rule: 'sshd', ports: '22', scope: 'p22', remaining: 3600, score: 1, count: 5, pattern: 'sshd.json#2' },
    { address: '198.51.100.3', family: 4, rule: 'postfix', ports: '25,465,587/tcp', scope: 'p25_465_587t', remaining: 600, score: 3, count: 3, pattern: 'postfix.json#1' },
    { address: '2001:db8::/64', family: 6, rule: 'postfix', ports: '25,465,587/tcp', scope: 'p25_465_587t_net', remaining: 86400, score: 3, count: 3, pattern: 'postfix.json#1' },
    { address: '203.0.113.77', family: 4, rule: null, ports: 'all', scope: '', remaining: 120, score: 0, count: 0, pattern: 'manual' },
  ];
  assert.equal(
    formatList(items),
    [
      'ADDRESS        RULE     PORTS           REMAINING  SCORE  COUNT  PATTERN',
      '2001:db8::/64  postfix  25,465,587/tcp   1d 0h 0m   3.00      3  postfix.json#1',
      '198.51.100.3   sshd     22               1h 0m 0s   1.00      5  sshd.json#2',
      '198.51.100.3   postfix  25,465,587/tcp     10m 0s   3.00      3  postfix.json#1',
      '203.0.113.77   -        all                 2m 0s   0.00      0  manual',
      '',
    ].join('\n'),
  );
});

test('status shows one line for the rules', () => {
  const rules = [
    { name: 'sshd', enabled: true, matches: 12, bansActive: 2 },
    { name: 'postfix', enabled: false, matches: 0, bansActive: 1 },
  ];
  assert.match(formatStatus({ ...STATUS, rules }), /^rules: +sshd 12 matches 2 banned, postfix off \(1 banned\)$/m);
  assert.doesNotMatch(formatStatus(STATUS), /^rules:/m);
});

test('bad usage is refused before anything is sent (exit 64)', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  const cases: [Subcommand, string[], RegExp][] = [
    ['ban', [], /ADDRESS\|NETWORK is needed/],
    ['ban', ['203.0.113.0/33'], /is not a valid network/],
    ['unban', ['host.example'], /is not an IPv4 or IPv6 address/],
    ['unban', ['2001:db8::/129'], /is not a valid network/],
    ['unban', [], /ADDRESS\|NETWORK \(or --all\) is needed/],
    ['unban', ['--all', '203.0.113.9'], /not both/],
    ['unban', ['--all=yes'], /--all takes no value/],
    ['ban', ['203.0.113.9', '--time', '-5'], /--time needs a value \(DURATION\); one starting with "-" is written --time=-\.\.\./],
    ['ban', ['203.0.113.9', '--time=-5'], /--time must be a duration from 1 s/],
    ['ban', ['203.0.113.9', '--time', '0'], /--time must be a duration/],
    ['ban', ['203.0.113.9', '--time', '1.5'], /--time must be a duration/],
    ['ban', ['203.0.113.9', '-t', '2x'], /--time must be a duration/],
    ['ban', ['203.0.113.9', '--time', '30d'], /--time must be a duration from 1 s to 2147483 s/],
    ['ban', ['203.0.113.9', '--time'], /--time needs a value \(DURATION\)/],
    ['ban', ['203.0.113.9', '--rule'], /--rule needs a value \(RULE\)/],
    ['ban', ['203.0.113.9', '198.51.100.1'], /unexpected argument "198.51.100.1"/],
    ['metrics', ['--json'], /unknown option --json/],
    ['status', ['--json=1'], /--json takes no value/],
    ['list', ['--bogus'], /unknown option --bogus/],
    ['list', ['-x'], /unknown option -x/],
    ['unban', ['203.0.113.9', '--time', '5'], /unknown option --time/],
    ['reload', ['now'], /unexpected argument "now"/],
    ['get', [], /KEY is needed/],
    ['get', ['sshd'], /"sshd" is not a setting: expected RULE.threshold, RULE.bantime or RULE.findtime/],
    ['get', ['sshd.ports'], /is not a setting/],
    ['set', ['sshd.bantime'], /KEY VALUE is needed/],
    ['set', ['sshd.bantime', '2h', 'x'], /unexpected argument "x"/],
    ['set', ['sshd.bantime', 'long'], /bantime: expected a duration from 1 s to 2147483 s/],
    ['set', ['sshd.findtime', '0'], /findtime: expected a duration/],
    ['set', ['sshd.threshold', '0'], /threshold: expected a score above 0/],
    ['set', ['sshd.threshold', 'many'], /threshold: expected a score above 0/],
    ['version', ['--json'], /unknown option --json/],
  ];
  for (const [sub, args, why] of cases) {
    const r = await run(sub, ['--socket', sock, ...args]);
    assert.equal(r.code, EXIT_USAGE, `${sub} ${args.join(' ')}`);
    assert.match(r.err, why);
    assert.equal(r.out, '');
  }
  assert.deepEqual(seen, []);
});

test('daemon not running: no socket, or a socket nobody listens on (exit 69)', async (t) => {
  const dir = tmpdir(t);
  const missing = path.join(dir, 'none.sock');
  let r = await run('status', ['--socket', missing]);
  assert.deepEqual(r, { code: EXIT_NOT_RUNNING, out: '', err: `tallow: the daemon is not running (no socket at ${missing})\n` });
  // A socket file left behind by a dead daemon: connect is refused.
  const stale = path.join(dir, 'stale.sock');
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(stale, res));
  fs.linkSync(stale, stale + '.keep');
  await new Promise<void>((res) => s.close(() => res()));
  fs.renameSync(stale + '.keep', stale);
  r = await run('list', ['--socket', stale]);
  assert.equal(r.code, EXIT_NOT_RUNNING);
  assert.match(r.err, /the daemon is not running/);
});

test('the socket path comes from socket= in --config FILE; a missing --config file is exit 78', async (t) => {
  const dir = tmpdir(t);
  const { sock } = await daemon(t, dir);
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `# test\nsocket = ${sock}\n`);
  const r = await run('status', ['--config', conf]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^version: +0\.1\.0$/m);
  const bad = await run('status', ['--config', path.join(dir, 'missing.conf')]);
  assert.equal(bad.code, EXIT_CONFIG);
  assert.match(bad.err, /missing\.conf/);
  assert.doesNotMatch(bad.err, /\n\s+at /, 'no stack trace');
});

test('a daemon that hangs up or answers garbage gives exit 76', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'odd.sock');
  const s = net.createServer((c) => {
    c.once('data', (d) => (String(d).includes('status') ? c.end('this is not json\n') : c.end()));
  });
  await new Promise<void>((res) => s.listen(sock, res));
  t.after(() => new Promise<void>((res) => s.close(() => res())));
  let r = await run('status', ['--socket', sock]);
  assert.equal(r.code, EXIT_PROTOCOL);
  assert.match(r.err, /unreadable answer/);
  r = await run('list', ['--socket', sock]);
  assert.equal(r.code, EXIT_PROTOCOL);
  assert.match(r.err, /closed the connection .* without answering/);
});

test('permission denied for an ordinary user on the root-only socket (exit 77)', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test needs root (it runs the client as nobody against a root-owned 0600 socket)');
  const dir = tmpdir(t);
  fs.chmodSync(dir, 0o755); // the directory is searchable: only the socket's own mode refuses
  const { sock, seen } = await daemon(t, dir);
  assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
  assert.equal(fs.statSync(sock).uid, 0);
  const ctl = path.resolve(__dirname, '../../src/ctl.js');
  const script = `require(${JSON.stringify(ctl)}).ctlMain('status', ['--socket', ${JSON.stringify(sock)}]).then((c) => process.exit(c))`;
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? null : 0, stdout, stderr });
    });
  });
  assert.equal(r.stderr, `tallow: permission denied on ${sock} (run as root)\n`);
  assert.equal(r.code, EXIT_PERMISSION);
  assert.equal(r.stdout, '');
  assert.deepEqual(seen, []);
});

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(59), '59s');
  assert.equal(formatDuration(60), '1m 0s');
  assert.equal(formatDuration(3725), '1h 2m 5s');
  assert.equal(formatDuration(90061), '1d 1h 1m');
});

test('exit statuses are the sysexits numbers, the same as the daemon\'s', () => {
  assert.deepEqual([EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_PROTOCOL, EXIT_PERMISSION, EXIT_CONFIG, EXIT_REFUSED], [64, 69, 76, 77, 78, 1]);
});

test('reload prints what changed; a configuration error is exit 78 with its file:line', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  reloadFails = false;
  let r = await run('reload', ['-s', sock]);
  assert.deepEqual(r, {
    code: 0,
    err: '',
    out: [
      'reloaded /etc/tallow.conf and the patterns',
      '  rule postfix enabled',
      '  settings made with tallow set dropped: sshd.bantime',
      '  changed settings that take effect only after a restart: socket',
      '',
    ].join('\n'),
  });
  reloadFails = true;
  t.after(() => (reloadFails = false));
  r = await run('reload', ['--socket', sock]);
  assert.deepEqual(r, { code: 78, out: '', err: 'tallow reload: reload refused, still running the previous configuration: /etc/tallow.conf:3: unknown key "treshold"\n' });
  assert.deepEqual(seen, [{ cmd: 'reload' }, { cmd: 'reload' }]);
});

test('get and set: the value with its unit and where it comes from; the value is sent checked', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  const g = await run('get', ['sshd.bantime', '-s', sock]);
  assert.deepEqual(g, { code: 0, err: '', out: "sshd.bantime = 3600 (1h 0m 0s)  (tallow.conf's shared score (threshold and expires))\n" });
  const s = await run('set', ['sshd.threshold', '2.5', '-s', sock]);
  assert.deepEqual(s, { code: 0, err: '', out: 'sshd.threshold: 1 -> 2.5 (until the next reload or restart)\n  rule sshd policy changed: threshold 1 -> 2.5, scores shared -> its own\n' });
  const d = await run('set', ['my.rule.bantime', '2h', '-s', sock]);
  assert.equal(d.code, 0, d.err);
  assert.deepEqual(seen, [{ cmd: 'get', key: 'sshd.bantime' }, { cmd: 'set', key: 'sshd.threshold', value: 2.5 }, { cmd: 'set', key: 'my.rule.bantime', value: 7200 }]);
});

test('unban --all, list --rule, ban --rule and --time as a duration', async (t) => {
  const { sock, seen } = await daemon(t, tmpdir(t));
  assert.deepEqual(await run('unban', ['--all', '-s', sock]), { code: 0, err: '', out: 'unbanned everything: 3 bans of 2 addresses and networks; their records are cleared\n' });
  assert.deepEqual(await run('list', ['-r', 'sshd', '-s', sock]), { code: 0, err: '', out: 'no bans of rule sshd\n' });
  assert.deepEqual(await run('list', ['--rule=sshd', '--json', '-s', sock]), { code: 0, err: '', out: '[]\n' });
  assert.deepEqual(await run('ban', ['198.51.100.7', '-r', 'sshd', '-t', '10m', '-s', sock]), { code: 0, err: '', out: 'banned 198.51.100.7 for 600 s (10m 0s) on ports 22/tcp (rule sshd)\n' });
  assert.deepEqual(seen, [{ cmd: 'unban', all: true }, { cmd: 'list', rule: 'sshd' }, { cmd: 'list', rule: 'sshd' }, { cmd: 'ban', address: '198.51.100.7', seconds: 600, rule: 'sshd' }]);
});

test('version: this program\'s, and the daemon\'s when it runs (exit 0 either way)', async (t) => {
  const dir = tmpdir(t);
  const { sock } = await daemon(t, dir);
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version: string };
  assert.deepEqual(await run('version', ['-s', sock]), { code: 0, err: '', out: `tallow ${pkg.version}\ndaemon: tallow 0.1.0 (pid 4242, up 1h 2m 5s)\n` });
  assert.deepEqual(await run('version', ['-s', path.join(dir, 'none.sock')]), { code: 0, err: '', out: `tallow ${pkg.version}\ndaemon: not running\n` });
});

test('each command\'s --help is written from its table, and -h is the same', async () => {
  for (const sub of ['status', 'list', 'rules', 'metrics', 'ban', 'unban', 'reload', 'get', 'set', 'version'] as const) {
    const h = await run(sub, ['--help']);
    assert.equal(h.code, 0);
    assert.match(h.out, new RegExp(`^usage: tallow ${sub}\\b`));
    assert.match(h.out, /^ {2}-s, --socket PATH /m);
    assert.match(h.out, /^Exit status:\n(?: .*\n)+$/m);
    assert.deepEqual(await run(sub, ['-h']), h);
    // --help beside a mistake: the help is what was asked for.
    assert.deepEqual(await run(sub, ['--frob', '--help']), h);
  }
  assert.match((await run('set', ['--help'])).out.replace(/\s+/g, ' '), /not saved: a reload \(tallow reload, SIGHUP\) or a restart goes back to the files/);
});
