// Idle memory (issue 12): the daemon loads only what its configuration uses. The real CLI is
// started (dry run, empty journal directory) with a preload that, once the ready line is written,
// reports every module file and built-in the process has loaded, then stops it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

const PRELOAD = `
const write = process.stdout.write.bind(process.stdout);
let done = false;
process.stdout.write = (chunk, ...rest) => {
  if (!done && /journal: .*starting at/.test(String(chunk))) {
    done = true;
    setImmediate(() => {
      require('fs').writeSync(2, 'LOADED ' + JSON.stringify({ files: Object.keys(require.cache), builtins: process.moduleLoadList }) + '\\n');
      process.kill(process.pid, 'SIGTERM');
    });
  }
  return write(chunk, ...rest);
};
`;

function loaded(t: { after(fn: () => unknown): void }, conf: string[]): { files: string[]; builtins: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-lazy-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'journal'));
  fs.writeFileSync(path.join(dir, 'preload.js'), PRELOAD);
  fs.writeFileSync(path.join(dir, 'tallow.conf'), [`state_dir=${dir}/state`, `socket=${dir}/sock`, ...conf, ''].join('\n'));
  const r = spawnSync(process.execPath, ['--require', path.join(dir, 'preload.js'), CLI, '--config', path.join(dir, 'tallow.conf'), '--journal-dir', path.join(dir, 'journal'), '--dry-run'], { encoding: 'utf8', timeout: 60_000 });
  const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  assert.ok(line, `no module list (exit ${r.status}): ${r.stdout}${r.stderr}`);
  const out = JSON.parse(line.slice('LOADED '.length)) as { files: string[]; builtins: string[] };
  return { files: out.files.map((f) => path.relative(ROOT, f)), builtins: out.builtins };
}

test('a dry run with history=off loads no store, no other backend, no client or report code, no action not configured, no ip-address, no http', (t) => {
  const { files, builtins } = loaded(t, ['history=off']);
  // The probe sees what it should (the daemon and the backend in use are there).
  for (const want of ['dist/src/daemon.js', 'dist/src/firewall/dryrun.js', 'dist/src/address.js']) assert.ok(files.includes(want), `${want} loaded: ${files.join(' ')}`);
  const unwanted = [
    /node_modules\/better-sqlite3\//, /node_modules\/pg\//, /node_modules\/ip-address\//,
    /dist\/src\/history\/(sqlite|postgres|store|schema)\.js$/, /dist\/src\/listeners\/history\.js$/,
    /dist\/src\/firewall\/(ipset|nftables|firewalld)\.js$/,
    /dist\/src\/(ctl|tester|history-cli)\.js$/, /dist\/src\/report\/(?!schedule\.js$)/, // schedule.ts parses report= in tallow.conf
    /dist\/src\/actions\/(command|mail|webhook|smtp)\.js$/, /node_modules\/nodemailer\//,
    /dist\/src\/fleet\/(?!settings\.js$)/, // fleet/settings.ts parses fleet= in tallow.conf; the rest only with a fleet
  ];
  for (const re of unwanted) assert.deepEqual(files.filter((f) => re.test(f)), [], `${re} not loaded`);
  assert.ok(!builtins.includes('NativeModule http'), 'node:http not loaded without metrics_listen');
  assert.ok(!builtins.includes('NativeModule https'), 'node:https not loaded without a webhook action');
});

test('metrics_listen loads node:http (the check above can see it; a port taken is only logged)', (t) => {
  const { builtins } = loaded(t, ['history=off', `metrics_listen=127.0.0.1:${20000 + Math.floor(Math.random() * 40000)}`]);
  assert.ok(builtins.includes('NativeModule http'), builtins.filter((b) => b.startsWith('NativeModule')).join(' '));
});
