// The command line: arguments, help and version, exit statuses; and install.sh staged into a
// temporary DESTDIR (files where they belong, the installed program runs, uninstall removes it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs, exitStatusFor, USAGE } from '../../src/cli';
import { ConfigError } from '../../src/config';
import { PatternError } from '../../src/patterns';
import { FirewallError } from '../../src/firewall';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

test('parseArgs: daemon options in both spellings', () => {
  assert.deepEqual(parseArgs([]), { kind: 'daemon', args: { config: '/etc/tallow.conf', explicitConfig: false, dryRun: false, verbose: false } });
  assert.deepEqual(parseArgs(['--config', '/x.conf', '--journal-dir=/j', '--dry-run', '--verbose']), {
    kind: 'daemon',
    args: { config: '/x.conf', explicitConfig: true, journalDir: '/j', dryRun: true, verbose: true },
  });
  assert.deepEqual(parseArgs(['--config=/y.conf']).kind, 'daemon');
  // Short aliases, grouped flags.
  assert.deepEqual(parseArgs(['-c', '/x.conf', '-D', '/j', '-nv']), {
    kind: 'daemon',
    args: { config: '/x.conf', explicitConfig: true, journalDir: '/j', dryRun: true, verbose: true },
  });
  assert.equal(parseArgs(['-h']).kind, 'help');
  assert.equal(parseArgs(['-V']).kind, 'version');
  assert.equal(parseArgs(['--help']).kind, 'help');
  assert.equal(parseArgs(['--dry-run', '--version']).kind, 'version');
});

test('parseArgs: subcommands go to ctl and the tester with their arguments', () => {
  assert.deepEqual(parseArgs(['list', '--json']), { kind: 'ctl', sub: 'list', args: ['--json'] });
  assert.deepEqual(parseArgs(['ban', '203.0.113.9', '--time', '60']), { kind: 'ctl', sub: 'ban', args: ['203.0.113.9', '--time', '60'] });
  assert.deepEqual(parseArgs(['test', '--unmatched', 'f.log']), { kind: 'test', args: ['--unmatched', 'f.log'] });
});

test('parseArgs: bad usage is named', () => {
  assert.deepEqual(parseArgs(['--config']), { kind: 'usage', error: '--config needs a value (FILE)' });
  assert.deepEqual(parseArgs(['-c']), { kind: 'usage', error: '--config needs a value (FILE)' });
  assert.deepEqual(parseArgs(['--config=']), { kind: 'usage', error: '--config needs a value (FILE)' });
  assert.deepEqual(parseArgs(['--journal-dir']), { kind: 'usage', error: '--journal-dir needs a value (DIR)' });
  assert.deepEqual(parseArgs(['--dry-run=yes']), { kind: 'usage', error: '--dry-run takes no value' });
  assert.deepEqual(parseArgs(['--frob']), { kind: 'usage', error: 'unknown option --frob' });
  assert.deepEqual(parseArgs(['-x']), { kind: 'usage', error: 'unknown option -x' });
  assert.deepEqual(parseArgs(['start']), { kind: 'usage', error: 'unknown command "start"' });
});

test('parseArgs: every command of the table goes to its handler with its arguments', () => {
  for (const sub of ['status', 'list', 'rules', 'metrics', 'ban', 'unban', 'reload', 'get', 'set', 'version']) {
    assert.deepEqual(parseArgs([sub, '-s', '/x']), { kind: 'ctl', sub, args: ['-s', '/x'] });
  }
  for (const sub of ['history', 'report', 'test']) assert.deepEqual(parseArgs([sub, '-h']), { kind: sub, args: ['-h'] });
});

test('exitStatusFor: 78 config and patterns, 69 firewall, 77 permission refused, 1 otherwise', () => {
  assert.equal(exitStatusFor(Object.assign(new Error('x'), { code: 'EACCES' })), 77);
  assert.equal(exitStatusFor(Object.assign(new Error('x'), { code: 'EPERM' })), 77);
  assert.equal(exitStatusFor(new ConfigError('x')), 78);
  assert.equal(exitStatusFor(new PatternError('x')), 78);
  assert.equal(exitStatusFor(new FirewallError('x')), 69);
  assert.equal(exitStatusFor(new Error('x')), 1);
  assert.equal(exitStatusFor('x'), 1);
});

test('the built CLI: --help, --version, bad usage', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const h = run(['--help']);
  assert.equal(h.status, 0);
  assert.equal(h.stdout, USAGE);
  const v = run(['--version']);
  assert.equal(v.status, 0);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(v.stdout, `tallow ${pkg.version}\n`);
  const u = run(['--nope']);
  assert.equal(u.status, 64);
  assert.equal(u.stderr, 'tallow: unknown option --nope (see tallow --help)\n');
  assert.equal(u.stdout, '');
  // The same status for a command's bad usage as for the daemon's.
  for (const args of [['status', '--nope'], ['ban'], ['history', '--limit', 'x'], ['report', '--format', 'pdf'], ['test', '--nope'], ['set', 'sshd.bantime']]) {
    const c = run(args);
    assert.equal(c.status, 64, `${args.join(' ')}: ${c.stderr}`);
    assert.match(c.stderr, /^tallow \w+: .+\n/);
  }
  const c = run(['--config', path.join(os.tmpdir(), `absent-${process.pid}.conf`)]);
  assert.equal(c.status, 78);
  assert.match(c.stderr, /^tallow: \S+absent-\d+\.conf: cannot read: ENOENT\n$/);
  assert.equal(fs.readFileSync(CLI, 'utf8').split('\n')[0], '#!/usr/bin/env node');
});

test('install.sh stages into DESTDIR, keeps an existing tallow.conf, and uninstalls', (t) => {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-dest-${process.pid}-`));
  t.after(() => fs.rmSync(dest, { recursive: true, force: true }));
  const sh = (args: string[]) => spawnSync('bash', [path.join(ROOT, 'install.sh'), ...args], { encoding: 'utf8', cwd: os.tmpdir() });
  const r = sh(['--destdir', dest, '--prefix', '/opt/tl', '--no-deps', '--no-build']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lib = path.join(dest, 'opt/tl/lib/tallow');
  for (const f of [
    'opt/tl/bin/tallow',
    'opt/tl/lib/tallow/dist/src/cli.js',
    'opt/tl/lib/tallow/dist/src/daemon.js',
    'opt/tl/lib/tallow/build/Release/tallow.node',
    'opt/tl/lib/tallow/patterns/sshd.json',
    'opt/tl/lib/tallow/package.json',
    'opt/tl/lib/tallow/node_modules/ip-address/package.json',
    'opt/tl/share/man/man8/tallow.8',
    'opt/tl/share/man/man5/tallow.conf.5',
    'opt/tl/share/man/man5/tallow.patterns.5',
    'etc/systemd/system/tallow.service',
    'etc/tallow.conf',
  ]) {
    assert.ok(fs.existsSync(path.join(dest, f)), `${f} installed`);
  }
  assert.ok(!fs.existsSync(path.join(lib, 'node_modules/typescript')), 'no dev dependencies');
  assert.ok(!fs.existsSync(path.join(lib, 'dist/test')), 'no tests');
  const launcher = fs.readFileSync(path.join(dest, 'opt/tl/bin/tallow'), 'utf8');
  assert.match(launcher, /^exec \S*node \/opt\/tl\/lib\/tallow\/dist\/src\/cli\.js "\$@"$/m);
  assert.ok(fs.statSync(path.join(dest, 'opt/tl/bin/tallow')).mode & 0o111, 'launcher executable');
  assert.match(fs.readFileSync(path.join(dest, 'etc/systemd/system/tallow.service'), 'utf8'), /^ExecStart=\/opt\/tl\/bin\/tallow$/m);
  assert.equal(fs.readFileSync(path.join(dest, 'etc/tallow.conf'), 'utf8'), fs.readFileSync(path.join(ROOT, 'tallow.conf'), 'utf8'));
  // The installed tree runs on its own (addon, patterns and dependencies found beside it).
  const v = spawnSync(process.execPath, [path.join(lib, 'dist/src/cli.js'), '--version'], { encoding: 'utf8', cwd: os.tmpdir() });
  assert.equal(v.status, 0, v.stderr);
  const load = spawnSync(process.execPath, ['-e', `const p=require(${JSON.stringify(path.join(lib, 'dist/src/patterns.js'))});console.log(p.shippedPatternsDir());require(${JSON.stringify(path.join(lib, 'dist/src/journal.js'))})`], { encoding: 'utf8', cwd: os.tmpdir() });
  assert.equal(load.status, 0, load.stderr);
  assert.equal(load.stdout.trim(), path.join(lib, 'patterns'));

  // A second install keeps the administrator's configuration.
  fs.writeFileSync(path.join(dest, 'etc/tallow.conf'), 'expires=7\n');
  const r2 = sh(['--destdir', dest, '--prefix', '/opt/tl', '--no-deps', '--no-build']);
  assert.equal(r2.status, 0, r2.stderr);
  assert.equal(fs.readFileSync(path.join(dest, 'etc/tallow.conf'), 'utf8'), 'expires=7\n');

  const u = sh(['--uninstall', '--destdir', dest, '--prefix', '/opt/tl']);
  assert.equal(u.status, 0, u.stderr);
  for (const f of ['opt/tl/bin/tallow', 'opt/tl/lib/tallow', 'opt/tl/share/man/man8/tallow.8', 'etc/systemd/system/tallow.service']) {
    assert.ok(!fs.existsSync(path.join(dest, f)), `${f} removed`);
  }
  assert.ok(fs.existsSync(path.join(dest, 'etc/tallow.conf')), 'configuration kept');

  const bad = sh(['--destdir', dest, '--start', '--no-deps', '--no-build']);
  assert.equal(bad.status, 64);
  assert.equal(sh(['--prefix', 'relative', '--destdir', dest]).status, 64);
});
