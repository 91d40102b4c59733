#!/usr/bin/env node
// Writes the .deb's machine-readable copyright file (DEP-5) to stdout: tallow itself, then one
// paragraph per bundled npm module from its own package.json and LICENSE file, so the file
// follows whatever npm resolved.
//   node scripts/deb-copyright.js STAGED_LIB_DIR   (the staged /usr/lib/tallow)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const lib = process.argv[2];
if (!lib || !fs.existsSync(path.join(lib, 'node_modules'))) {
  console.error(`deb-copyright: ${lib || '(no argument)'}: no node_modules here (give the staged /usr/lib/tallow)`);
  process.exit(64);
}
const own = JSON.parse(fs.readFileSync(path.join(lib, 'package.json'), 'utf8'));

/** node_modules/NAME and node_modules/@scope/NAME (npm installs the tree flat; nested ones too). */
function modules(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (name.startsWith('@')) out.push(...modules(p));
    else if (fs.existsSync(path.join(p, 'package.json'))) {
      out.push(p);
      out.push(...modules(path.join(p, 'node_modules')));
    }
  }
  return out;
}

const COMMON = '/usr/share/common-licenses';
/** SPDX expression -> DEP-5 form: "(MIT OR Apache-2.0)" -> "MIT or Apache-2.0". */
function dep5(expr) {
  return String(expr).replace(/[()]/g, '').replace(/ OR /g, ' or ').replace(/ AND /g, ' and ').trim();
}
function ids(expr) {
  return dep5(expr).split(/ or | and /).map((s) => s.trim()).filter(Boolean);
}
function licenseFiles(dir) {
  return fs.readdirSync(dir).filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort().map((f) => path.join(dir, f));
}
/** Each line of a DEP-5 text field: indented, blank lines as " .". */
function indent(text) {
  return text.replace(/\s+$/, '').split('\n').map((l) => (l.trim() === '' ? ' .' : ` ${l.replace(/\s+$/, '')}`)).join('\n');
}
const isCopyright = (l) => /^\s*(copyright\b|\(c\)|©)/i.test(l);

const paras = [
  [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: tallow',
    'Comment: tallow bundles the npm modules it runs with (under /usr/lib/tallow/node_modules);',
    ' each one keeps its own license file there.',
  ].join('\n'),
  ['Files: *', 'Copyright: 2025-2026 tallow maintainers', 'License: GPL-3'].join('\n'),
];
if (own.license !== 'GPL-3.0-only') {
  console.error(`deb-copyright: package.json: license is ${own.license}, this script writes GPL-3 for tallow: update it`);
  process.exit(65);
}
const texts = new Map([['GPL-3', `On Debian systems, the full text of the GNU General Public License version 3\ncan be found in ${COMMON}/GPL-3.`]]);
for (const dir of modules(path.join(lib, 'node_modules'))) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const rel = path.relative(lib, dir);
  const files = licenseFiles(dir);
  const holders = new Set();
  for (const f of files) for (const l of fs.readFileSync(f, 'utf8').split('\n')) if (isCopyright(l)) holders.add(l.trim());
  if (holders.size === 0) {
    const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
    holders.add(author ? `${author} (package.json)` : `the authors of ${pkg.name} (no notice in the module)`);
  }
  const license = pkg.license ? dep5(pkg.license) : 'UNKNOWN';
  paras.push([`Files: ${rel}/*`, `Copyright: ${[...holders].join('\n ')}`, `License: ${license}`].join('\n'));
  for (const id of ids(license)) {
    if (texts.has(id)) continue;
    if (fs.existsSync(path.join(COMMON, id))) {
      texts.set(id, `On Debian systems, the full text of ${id} can be found in ${COMMON}/${id}.`);
      continue;
    }
    // The module's own text: its LICENSE.<ID> when it has one per license, else its only file.
    const mine = files.find((f) => path.basename(f).toUpperCase().endsWith(`.${id.toUpperCase()}`)) ?? (ids(license).length === 1 ? files[0] : undefined);
    if (!mine) continue;
    const body = fs.readFileSync(mine, 'utf8').split('\n').filter((l) => !isCopyright(l)).join('\n').trim();
    if (body) texts.set(id, body);
  }
}
const missing = new Set();
for (const p of paras) for (const m of p.matchAll(/^License: (.*)$/gm)) for (const id of ids(m[1])) if (!texts.has(id)) missing.add(id);
for (const id of missing) texts.set(id, `No text of ${id} found among the bundled modules: see the module's own files.`);
for (const [id, text] of [...texts].sort()) paras.push(`License: ${id}\n${indent(text)}`);
process.stdout.write(`${paras.join('\n\n')}\n`);
