// The Debian package (issue 18 point 1), built from this tree by scripts/build-deb.sh into a
// temporary directory: its files, control fields, conffiles, maintainer scripts and lintian's
// verdict. Installing it under a real systemd is test/deb/boot.test.ts (on demand: minutes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
let dir = '';
let deb = '';
/** path (without the leading "./") -> the mode column of `dpkg-deb -c`. */
const listing = new Map<string, string>();

before(() => {
  assert.ok(fs.existsSync(path.join(root, 'build/Release/tallow.node')), 'build first: npm run build');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-deb-'));
  const r = spawnSync('bash', [path.join(root, 'scripts/build-deb.sh'), '--out', dir], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `build-deb.sh failed:\n${r.stdout}\n${r.stderr}`);
  const debs = fs.readdirSync(dir).filter((f) => f.endsWith('.deb'));
  assert.equal(debs.length, 1, `one .deb expected in ${dir}: ${debs.join(' ')}`);
  deb = path.join(dir, debs[0]);
  for (const line of execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).split('\n')) {
    const m = /^(\S+)\s+\S+\s+\d+\s+\S+\s+\S+\s+\.\/(.*?)(?: -> .*)?$/.exec(line);
    if (m) listing.set(m[2], m[1]);
  }
});
after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function field(name: string): string {
  return execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();
}
function fileOf(p: string): string {
  return execFileSync('bash', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xOf - "./$2"', '-', deb, p], { encoding: 'utf8' });
}
/** Every file under DIR of the source tree (relative), for "nothing built is left out". */
function treeFiles(d: string, keep: (f: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(path.join(root, p), { withFileTypes: true })) {
      const q = path.join(p, e.name);
      if (e.isDirectory()) walk(q);
      else if (keep(q)) out.push(q);
    }
  };
  walk(d);
  return out;
}

test('the file name carries the changelog version and the architecture', () => {
  const pkgVersion = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
  const changelog = fs.readFileSync(path.join(root, 'debian/changelog'), 'utf8');
  const version = /^tallow \(([^)]+)\)/.exec(changelog)?.[1];
  assert.ok(version?.startsWith(`${pkgVersion}-`), `debian/changelog's version ${version} is package.json's ${pkgVersion}-N`);
  assert.equal(path.basename(deb), `tallow_${version}_amd64.deb`);
  assert.equal(field('Package'), 'tallow');
  assert.equal(field('Version'), version);
  assert.equal(field('Architecture'), 'amd64');
});

test('the program, launcher, unit, man pages, configuration and state directory are where Debian puts them', () => {
  const want: [string, RegExp][] = [
    ['usr/sbin/tallow', /^-rwxr-xr-x$/],
    ['usr/lib/tallow/package.json', /^-rw-r--r--$/],
    ['usr/lib/tallow/dist/src/cli.js', /^-rwxr-xr-x$/],
    ['usr/lib/tallow/build/Release/tallow.node', /^-rw-r--r--$/],
    ['usr/lib/tallow/node_modules/better-sqlite3/build/Release/better_sqlite3.node', /^-rw-r--r--$/],
    ['lib/systemd/system/tallow.service', /^-rw-r--r--$/],
    ['usr/share/man/man8/tallow.8.gz', /^-rw-r--r--$/],
    ['usr/share/man/man5/tallow.conf.5.gz', /^-rw-r--r--$/],
    ['usr/share/man/man5/tallow.patterns.5.gz', /^-rw-r--r--$/],
    ['usr/share/bash-completion/completions/tallow', /^-rw-r--r--$/],
    ['usr/share/zsh/vendor-completions/_tallow', /^-rw-r--r--$/],
    ['etc/tallow.conf', /^-rw-r--r--$/],
    ['etc/tallow/', /^drwxr-xr-x$/],
    ['var/lib/tallow/', /^drwx------$/],
    ['usr/share/doc/tallow/copyright', /^-rw-r--r--$/],
    ['usr/share/doc/tallow/changelog.Debian.gz', /^-rw-r--r--$/],
    ['usr/share/lintian/overrides/tallow', /^-rw-r--r--$/],
  ];
  for (const [p, mode] of want) {
    assert.ok(listing.has(p), `${p} is in the package`);
    assert.match(listing.get(p)!, mode, `${p}: mode`);
  }
  // Every production dependency, every compiled module, shipped pattern file and man page.
  const deps = Object.keys(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).dependencies);
  assert.ok(deps.length >= 4);
  for (const d of deps) assert.ok(listing.has(`usr/lib/tallow/node_modules/${d}/package.json`), `dependency ${d} is bundled`);
  const js = treeFiles('dist/src', (f) => f.endsWith('.js'));
  assert.ok(js.length > 50, `dist/src has the compiled program (${js.length} files)`);
  for (const f of js) assert.ok(listing.has(`usr/lib/tallow/${f}`), `${f} is in the package`);
  for (const f of treeFiles('patterns', () => true)) assert.ok(listing.has(`usr/lib/tallow/${f}`), `${f} is in the package`);
  for (const f of fs.readdirSync(path.join(root, 'man'))) {
    const section = f.slice(f.lastIndexOf('.') + 1);
    assert.ok(listing.has(`usr/share/man/man${section}/${f}.gz`), `man/${f} is in the package, gzipped`);
  }
  // Nothing of install.sh's own layout, no source maps, no build intermediates.
  for (const p of listing.keys()) {
    assert.doesNotMatch(p, /^(usr\/local\/|usr\/bin\/tallow|etc\/systemd\/)/, `${p}: not a Debian path for this package`);
    assert.doesNotMatch(p, /\.(map|o|ts)$|\/obj\.target\//, `${p}: not needed at run time`);
    // A nested module copied a second time into its own directory (install.sh did, once).
    assert.doesNotMatch(p, /\/node_modules\/([^/]+)\/\1\//, `${p}: a module nested in itself`);
  }
});

test('launcher and unit point at the packaged program', () => {
  assert.match(fileOf('usr/sbin/tallow'), /^exec \/usr\/bin\/node \/usr\/lib\/tallow\/dist\/src\/cli\.js "\$@"$/m);
  const unit = fileOf('lib/systemd/system/tallow.service');
  assert.match(unit, /^ExecStart=\/usr\/sbin\/tallow$/m);
  assert.match(unit, /^Type=notify$/m);
  assert.match(unit, /^WantedBy=multi-user\.target$/m);
});

test('control: dependencies, conffiles and executable maintainer scripts', () => {
  const depends = field('Depends').split(/,\s*/);
  assert.ok(depends.includes('nodejs (>= 20)'), depends.join(', '));
  for (const lib of ['libsystemd0', 'libc6', 'libstdc++6']) assert.ok(depends.some((d) => d.split(' ')[0] === lib), `Depends names ${lib}: ${depends.join(', ')}`);
  // Working firewalls: {ipset and iptables}, {nftables} or {firewalld}.
  assert.ok(depends.includes('nftables | firewalld | ipset'), depends.join(', '));
  assert.ok(depends.includes('nftables | firewalld | iptables'), depends.join(', '));

  const control = path.join(dir, 'control');
  execFileSync('dpkg-deb', ['-e', deb, control]);
  const conffiles = fs.readFileSync(path.join(control, 'conffiles'), 'utf8').split('\n').filter(Boolean).sort();
  assert.ok(conffiles.includes('/etc/tallow.conf'), conffiles.join(' '));
  // Every file the package puts in /etc is a conffile (an administrator's edits survive upgrades).
  const etc = [...listing.keys()].filter((p) => p.startsWith('etc/') && !p.endsWith('/')).map((p) => `/${p}`).sort();
  assert.deepEqual(conffiles, etc);
  for (const s of ['postinst', 'prerm', 'postrm']) {
    const p = path.join(control, s);
    assert.equal(fs.statSync(p).mode & 0o777, 0o755, `${s} is executable`);
    execFileSync('sh', ['-n', p]);
  }
  assert.match(fs.readFileSync(path.join(control, 'postinst'), 'utf8'), /deb-systemd-helper enable 'tallow\.service'/);
  assert.match(fs.readFileSync(path.join(control, 'postinst'), 'utf8'), /deb-systemd-invoke \$_action 'tallow\.service'/);
  assert.match(fs.readFileSync(path.join(control, 'prerm'), 'utf8'), /deb-systemd-invoke stop 'tallow\.service'/);
  assert.match(fs.readFileSync(path.join(control, 'postrm'), 'utf8'), /rm -rf \/var\/lib\/tallow \/etc\/tallow /);
});

test('the packaged program runs from its unpacked tree (nothing it loads is missing)', () => {
  const tree = path.join(dir, 'tree');
  execFileSync('dpkg-deb', ['-x', deb, tree]);
  const cli = path.join(tree, 'usr/lib/tallow/dist/src/cli.js');
  const pkgVersion = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
  assert.match(execFileSync(process.execPath, [cli, '--version'], { encoding: 'utf8' }), new RegExp(pkgVersion.replace(/\./g, '\\.')));
  // `tallow test` loads the engine, the shipped patterns and the matcher.
  const log = path.join(dir, 'auth.log');
  fs.writeFileSync(log, 'Failed password for root from 192.0.2.7 port 4242 ssh2\n');
  const patterns = path.join(tree, 'usr/lib/tallow/patterns');
  const r = spawnSync(process.execPath, [cli, 'test', '--patterns', patterns, log], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /192\.0\.2\.7/);
  // The SQLite history store's native module loads under this Node.
  const sqlite = path.join(tree, 'usr/lib/tallow/node_modules/better-sqlite3');
  const s = spawnSync(process.execPath, ['-e', `const D=require(${JSON.stringify(sqlite)}); console.log(new D(':memory:').prepare('select 41+1 as x').get().x)`], { encoding: 'utf8' });
  assert.equal(s.stdout.trim(), '42', s.stderr);
});

test('lintian has nothing to say (every remaining tag is overridden with its reason)', () => {
  const r = spawnSync('lintian', ['-I', '--pedantic', deb], { encoding: 'utf8', timeout: 300_000 });
  const out = r.stdout.split('\n').filter((l) => l.trim() && !/^running with root privileges/.test(l));
  assert.deepEqual(out, [], r.stdout + r.stderr);
  assert.equal(r.status, 0, r.stderr);
});
