// The one option parser and its table (options.ts, commands.ts): every command's options parsed
// the same way (long, =value, short, grouped), usage errors named, each --help written from the
// table; the table itself consistent (no alias used twice in a command, every command reachable).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMANDS, DAEMON, command, usage } from '../../src/commands';
import { CTL_COMMANDS } from '../../src/cli';
import { helpText, parseCommand, synopsis, UsageError, type CommandSpec } from '../../src/options';

const err = (spec: CommandSpec, argv: string[]): string => {
  try {
    parseCommand(spec, argv);
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    return e.message;
  }
  return assert.fail(`${argv.join(' ')} was accepted`);
};

test('the table: unique names and aliases per command, each with help, every command dispatched', () => {
  const names = COMMANDS.map((c) => c.name);
  assert.equal(new Set(names).size, names.length);
  for (const c of [DAEMON, ...COMMANDS]) {
    const longs = c.options.map((o) => o.long);
    const shorts = c.options.flatMap((o) => (o.short ? [o.short] : []));
    assert.equal(new Set(longs).size, longs.length, `${c.name}: a long option twice`);
    assert.equal(new Set(shorts).size, shorts.length, `${c.name}: a short alias twice`);
    assert.ok(longs.includes('help'), `${c.name || 'daemon'} has --help`);
    for (const o of c.options) assert.ok(o.help.length > 5, `${c.name} --${o.long} has help`);
    assert.ok(c.positionals[0] <= c.positionals[1]);
  }
  for (const n of names) assert.ok((CTL_COMMANDS as readonly string[]).includes(n) || ['history', 'report', 'test', 'allow'].includes(n), `${n} has a handler`);
  for (const n of CTL_COMMANDS) assert.ok(command(n), `${n} is in the table`);
});

test('parseCommand: long, =value, short, grouped short flags, repeated values, -- ends the options', () => {
  const ban = command('ban')!;
  assert.deepEqual(parseCommand(ban, ['203.0.113.9', '--time', '60', '--rule=sshd']), { values: { time: '60', rule: 'sshd' }, positionals: ['203.0.113.9'], help: false });
  assert.deepEqual(parseCommand(ban, ['-t', '2h', '-r', 'sshd', '-s', '/s', '203.0.113.9']).values, { time: '2h', rule: 'sshd', socket: '/s' });
  assert.deepEqual(parseCommand(command('list')!, ['-jr', 'sshd']).values, { json: true, rule: 'sshd' });
  assert.deepEqual(parseCommand(command('test')!, ['-f', 'A=1', '--field', 'B=2', 'x.log']).values.field, ['A=1', 'B=2']);
  assert.deepEqual(parseCommand(command('test')!, ['--', '--odd-name.log']).positionals, ['--odd-name.log']);
  assert.deepEqual(parseCommand(command('test')!, ['-']).positionals, ['-']);
});

test('parseCommand: each usage error names the option or argument', () => {
  const ban = command('ban')!;
  assert.equal(err(ban, ['--nope', '203.0.113.9']), 'unknown option --nope');
  assert.equal(err(ban, ['-q', '203.0.113.9']), 'unknown option -q');
  assert.equal(err(ban, ['203.0.113.9', '--time']), '--time needs a value (DURATION)');
  assert.equal(err(ban, ['203.0.113.9', '-t']), '--time needs a value (DURATION)');
  assert.equal(err(ban, ['203.0.113.9', '--time=']), '--time needs a value (DURATION)');
  assert.equal(err(ban, ['203.0.113.9', '--time', '-5']), '--time needs a value (DURATION); one starting with "-" is written --time=-...');
  assert.equal(err(command('status')!, ['--json=yes']), '--json takes no value');
  assert.equal(err(ban, []), 'ADDRESS|NETWORK is needed');
  assert.equal(err(ban, ['203.0.113.9', '203.0.113.10']), 'unexpected argument "203.0.113.10"');
  assert.equal(err(DAEMON, ['stop']), 'unknown command "stop"');
});

test('--help is answered even beside a mistake; nothing else is checked then', () => {
  assert.equal(parseCommand(command('set')!, ['--help']).help, true);
  assert.equal(parseCommand(command('set')!, ['-h', '--bogus']).help, true);
  assert.deepEqual(parseCommand(command('get')!, ['--', '--help']), { values: {}, positionals: ['--help'], help: false });
});

test('each --help lists every option of the table with its alias and value, and the exit statuses', () => {
  for (const c of COMMANDS) {
    const h = helpText(c);
    for (const o of c.options) {
      const line = `${o.short ? `-${o.short}, ` : '    '}--${o.long}${o.value ? ` ${o.value}` : ''}`;
      assert.ok(h.includes(`  ${line}  `), `tallow ${c.name} --help: ${line}\n${h}`);
    }
    for (const code of c.exits) assert.match(h, new RegExp(`^ +${code}  `, 'm'), `${c.name}: exit ${code}`);
    assert.ok(h.startsWith(`usage: ${synopsis(c, true).slice(0, 40)}`));
    for (const line of h.split('\n')) assert.ok(line.length <= 100, `tallow ${c.name} --help: a line over 100 columns: ${line}`);
  }
  const u = usage();
  for (const c of COMMANDS) assert.match(u, new RegExp(`^  ${c.name}\\b`, 'm'), `tallow --help lists ${c.name}`);
  for (const o of DAEMON.options) assert.ok(u.includes(`--${o.long}`));
  for (const code of [0, 1, 64, 66, 69, 76, 77, 78]) assert.match(u, new RegExp(`^ +${code}  `, 'm'));
});
