// The drop-in the daemon owns: <config>.d/50-tallow-allow.conf, the allowlist entries added with
// `tallow allow add`. Written whole and atomically (temporary file, fsync, rename), so a crash
// leaves the old file or the new one, never half of one; read back at every start and reload like
// any other drop-in (config.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllowEntry, type AllowEntry } from './allowlist';
import { dropinDir } from './config';
import { targetOf } from './target';

export const ALLOW_DROPIN = '50-tallow-allow.conf';

const HEADER = `# Written by tallow (tallow allow add|remove): allowlist entries added at runtime.
# Read after tallow.conf like every drop-in; entries here add to the allowlist.
# Rewritten whole by each tallow allow add|remove: its whitelist= lines are kept, other lines dropped.
`;

/** The drop-in of a configuration file: /etc/tallow.conf -> /etc/tallow.conf.d/50-tallow-allow.conf. */
export function allowDropin(configFile: string): string {
  return path.join(dropinDir(configFile), ALLOW_DROPIN);
}

/** An entry as this file keeps it: `198.51.100.0/24` (host bits cleared), or the address alone. */
export function entryText(e: AllowEntry): string {
  return targetOf(e.address, e.family, e.prefix);
}

/** The `whitelist=` entries of the file, canonical; [] when it does not exist. Throws on other errors. */
export function readAllowDropin(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*whitelist\s*=\s*(\S.*?)\s*$/.exec(line);
    if (!m) continue;
    // A bad entry stops the daemon's own config load with file:line; here it is only skipped.
    try {
      const t = entryText(parseAllowEntry(m[1]));
      if (!out.includes(t)) out.push(t);
    } catch {
      /* reported by config.ts */
    }
  }
  return out;
}

/** The file with these entries (0644, its directory 0755 if missing): temporary file, fsync, rename. */
export function writeAllowDropin(file: string, entries: string[]): void {
  const dir = path.dirname(file);
  // Made here only when missing; 0755 whatever the umask (the unit's is 0077), like /etc itself.
  if (fs.mkdirSync(dir, { recursive: true }) !== undefined) fs.chmodSync(dir, 0o755);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const body = HEADER + entries.map((e) => `whitelist=${e}\n`).join('');
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, body);
      fs.fchmodSync(fd, 0o644); // whatever the umask (the unit's is 0077): a configuration file others may read
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    const err = e as NodeJS.ErrnoException;
    const hint = err.code === 'EROFS' ? ` (read-only here; under systemd the unit needs ReadWritePaths=${dir})` : '';
    throw new Error(`cannot write ${file}: ${err.code ?? err.message}${hint}`);
  }
  // The rename itself made durable.
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    /* some file systems refuse fsync on a directory; the rename is done */
  }
}
