// tallow.service as systemd reads it: hardened to an exposure of 2.0 or less, and clean under
// `systemd-analyze verify` (with ExecStart pointed at an executable that exists here and the
// man pages of Documentation= findable, as they are once install.sh has run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const UNIT = path.join(ROOT, 'tallow.service');

function needTool(tool: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
  if (r.status !== 0) throw new Error(`${tool} is missing (install it: scripts/deps.sh)`);
}

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-unit-${process.pid}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test('tallow.service: systemd-analyze security --offline exposure is 2.0 or lower', (t) => {
  needTool('systemd-analyze');
  const dir = tmpdir(t);
  const copy = path.join(dir, 'tallow.service');
  fs.copyFileSync(UNIT, copy);
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', copy], { encoding: 'utf8' });
  const m = /Overall exposure level for tallow\.service: (\d+(?:\.\d+)?)/.exec(r.stdout + r.stderr);
  assert.ok(m, `no exposure level in:\n${r.stdout}\n${r.stderr}`);
  const level = Number(m![1]);
  assert.ok(level <= 2.0, `exposure ${level} > 2.0:\n${r.stdout}`);
});

test('tallow.service: systemd-analyze verify is clean', (t) => {
  needTool('systemd-analyze');
  needTool('man');
  const dir = tmpdir(t);
  const bin = path.join(dir, 'tallow');
  fs.writeFileSync(bin, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  for (const s of ['5', '8']) {
    fs.mkdirSync(path.join(dir, 'man', `man${s}`), { recursive: true });
    for (const f of fs.readdirSync(path.join(ROOT, 'man'))) if (f.endsWith(`.${s}`)) fs.copyFileSync(path.join(ROOT, 'man', f), path.join(dir, 'man', `man${s}`, f));
  }
  const text = fs.readFileSync(UNIT, 'utf8');
  assert.match(text, /^ExecStart=\/usr\/local\/bin\/tallow$/m, 'ExecStart is where install.sh puts the launcher by default');
  const copy = path.join(dir, 'tallow.service');
  fs.writeFileSync(copy, text.replace(/^ExecStart=.*$/m, `ExecStart=${bin}`));
  const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', env: { ...process.env, MANPATH: path.join(dir, 'man') } });
  assert.equal(r.status, 0, `systemd-analyze verify: ${r.stdout}${r.stderr}`);
  assert.equal((r.stdout + r.stderr).trim(), '', 'no warnings');
  // The test can fail: a unit with an unknown directive is reported.
  fs.writeFileSync(copy, text.replace(/^ExecStart=.*$/m, `ExecStart=${bin}\nNoSuchDirective=1`));
  const bad = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', env: { ...process.env, MANPATH: path.join(dir, 'man') } });
  assert.match(bad.stdout + bad.stderr, /NoSuchDirective/);
});

test('tallow.service: what the daemon needs', () => {
  const text = fs.readFileSync(UNIT, 'utf8');
  for (const line of ['Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID', 'StateDirectory=tallow', 'RuntimeDirectory=tallow', 'RuntimeDirectoryMode=0700', 'MemoryDenyWriteExecute=no', 'NoNewPrivileges=yes', 'ProtectSystem=strict']) {
    assert.ok(text.split('\n').includes(line), `missing ${line}`);
  }
  assert.match(text, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m);
  assert.match(text, /^RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6$/m);
  assert.match(text, /^After=.*firewalld\.service.*nftables\.service.*iptables\.service/m);
});
