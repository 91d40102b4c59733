// install.sh's files for issue 18: bash and zsh completion, the logrotate snippet, the drop-in directory;
// removed on --uninstall except the drop-ins (the administrator's configuration).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');

test('install.sh installs the completions, the logrotate snippet and /etc/tallow.conf.d; uninstall keeps the drop-ins', (t) => {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-extras-${process.pid}-`));
  t.after(() => fs.rmSync(dest, { recursive: true, force: true }));
  const sh = (args: string[]) => spawnSync('bash', [path.join(ROOT, 'install.sh'), ...args], { encoding: 'utf8', cwd: os.tmpdir() });
  const r = sh(['--destdir', dest, '--prefix', '/opt/tl', '--no-deps', '--no-build']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const completion = path.join(dest, 'usr/share/bash-completion/completions/tallow');
  const logrotate = path.join(dest, 'etc/logrotate.d/tallow');
  assert.equal(fs.readFileSync(completion, 'utf8'), fs.readFileSync(path.join(ROOT, 'completion/tallow.bash'), 'utf8'));
  assert.equal(fs.statSync(completion).mode & 0o777, 0o644);
  const zsh = path.join(dest, 'usr/share/zsh/vendor-completions/_tallow');
  assert.equal(fs.readFileSync(zsh, 'utf8'), fs.readFileSync(path.join(ROOT, 'completion/_tallow'), 'utf8'));
  assert.equal(fs.statSync(zsh).mode & 0o777, 0o644);
  const rot = fs.readFileSync(logrotate, 'utf8');
  assert.match(rot, /^\/var\/log\/tallow\.log \{$/m);
  assert.match(rot, /kill -USR2 "\$\(cat \/run\/tallow\.pid\)"/);
  assert.doesNotMatch(rot, /^\s*copytruncate/m);
  assert.equal(fs.statSync(path.join(dest, 'etc/tallow.conf.d')).mode & 0o777, 0o755);

  fs.writeFileSync(path.join(dest, 'etc/tallow.conf.d/50-tallow-allow.conf'), 'whitelist=198.51.100.0/24\n');
  const u = sh(['--uninstall', '--destdir', dest, '--prefix', '/opt/tl']);
  assert.equal(u.status, 0, u.stderr);
  assert.equal(fs.existsSync(completion), false);
  assert.equal(fs.existsSync(zsh), false);
  assert.equal(fs.existsSync(logrotate), false);
  assert.equal(fs.readFileSync(path.join(dest, 'etc/tallow.conf.d/50-tallow-allow.conf'), 'utf8'), 'whitelist=198.51.100.0/24\n');
});
