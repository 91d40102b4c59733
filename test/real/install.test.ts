// README's first command, `./install.sh --start`, on a machine without systemd as PID 1 (like
// this one): it must install and leave a running daemon with the shipped configuration. Run in a
// private mount namespace with overlays on /etc, /usr/local and /var and a tmpfs /run, inside a
// network namespace of its own, so neither the host's files nor its firewall change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');

test('install.sh --start installs and starts the daemon in the background (no systemd)', (t) => {
  assert.equal(process.getuid?.(), 0, 'this test must run as root (namespaces, overlays)');
  assert.ok(fs.existsSync(path.join(root, 'build/Release/tallow.node')), 'build first: npm run build');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-install-'));
  const ns = `tinst${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.after(() => {
    // The daemon lives in our network namespace: end it by the PIDs found there.
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    spawnSync('ip', ['netns', 'del', ns]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const d of ['etc-up', 'etc-work', 'usr-up', 'usr-work', 'var-up', 'var-work']) fs.mkdirSync(path.join(dir, d));
  const script = [
    'set -e',
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc-up,workdir=${dir}/etc-work /etc`,
    `mount -t overlay overlay -o lowerdir=/usr/local,upperdir=${dir}/usr-up,workdir=${dir}/usr-work /usr/local`,
    `mount -t overlay overlay -o lowerdir=/var,upperdir=${dir}/var-up,workdir=${dir}/var-work /var`,
    'mount -t tmpfs tmpfs /run',
    // No /etc/tallow.conf (a fresh machine), whatever the host has.
    'rm -f /etc/tallow.conf',
    `cd ${root}`,
    './install.sh --start --no-deps --no-build',
    'echo "== status"',
    '/usr/local/bin/tallow status',
    'echo "== sets"',
    'ipset list -n',
    'iptables -S INPUT',
    'echo "== conf"',
    'test -f /etc/tallow.conf && echo conf-installed',
    'kill "$(cat /run/tallow.pid)"',
  ].join('\n');
  const r = spawnSync('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', script], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out);
  assert.match(r.stdout, /tallow is running in the background \(pid \d+/);
  assert.match(r.stdout, /backend:\s+ipset/);
  assert.match(r.stdout, /^tallow$/m);
  assert.match(r.stdout, /-A INPUT -m set --match-set tallow src -j DROP/);
  assert.match(r.stdout, /conf-installed/);
  // It went where README says, inside our overlay (the host's /usr/local is its lower layer).
  assert.ok(fs.existsSync(path.join(dir, 'usr-up/lib/tallow/dist/src/cli.js')), 'program installed under /usr/local/lib/tallow');
  assert.ok(fs.existsSync(path.join(dir, 'usr-up/share/man/man8/tallow.8')), 'man page installed');
});
