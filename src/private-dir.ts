// Directories the root daemon writes into (state_dir, the control socket's directory) must be
// writable by root alone: whoever can write there can plant symlinks or swap files under the
// daemon. The directory itself must belong to the daemon's user and not be group/world writable;
// each directory above it must belong to root (or the daemon's user) and be writable by nobody
// else unless sticky (like /tmp, where others cannot rename what is not theirs).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A directory others could write into: the daemon refuses to start. The CLI exits 78. */
export class UnsafeDirError extends Error {
  readonly exitCode = 78;
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeDirError';
  }
}

function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}

function writers(mode: number): string {
  const g = (mode & 0o020) !== 0;
  const o = (mode & 0o002) !== 0;
  return g && o ? 'group and others' : g ? 'its group' : 'others';
}

function errCode(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err && err.code ? err.code : String(e);
}

/** What is wrong with one ancestor directory, or null. */
function ancestorProblem(p: string, uid: number): string | null {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch (e) {
    return `cannot check ${p}: ${errCode(e)}`;
  }
  // A symlink among the ancestors is judged by its parent (already checked) and its target
  // (checked through the real path).
  if (st.isSymbolicLink()) return null;
  if (st.uid !== 0 && st.uid !== uid) return `${p} above it is owned by uid ${st.uid}, who could replace it (chown root ${p})`;
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    return `${p} above it is writable by ${writers(st.mode)} (mode ${octal(st.mode)}) and not sticky (chmod go-w ${p})`;
  }
  return null;
}

function ancestors(dir: string): string[] {
  const out: string[] = [];
  for (let p = path.dirname(dir); ; p = path.dirname(p)) {
    out.push(p);
    if (p === path.dirname(p)) return out;
  }
}

/**
 * Create `dir` (0700) if missing, then check it and the directories above it. Throws
 * UnsafeDirError `<what> <dir>: <what is wrong> (<the fix>)`; one line, naming the directory.
 */
export function checkPrivateDir(dir: string, what: string, uid: number = process.geteuid?.() ?? 0): void {
  const abs = path.resolve(dir);
  const fail = (why: string): never => {
    throw new UnsafeDirError(`${what} ${abs}: ${why}; refusing to use it`);
  };
  try {
    fs.mkdirSync(abs, { recursive: true, mode: 0o700 });
  } catch (e) {
    fail(`cannot create it: ${errCode(e)}`);
  }
  let real: string;
  let st: fs.Stats;
  try {
    real = fs.realpathSync(abs);
    st = fs.statSync(real);
  } catch (e) {
    return fail(`cannot check it: ${errCode(e)}`);
  }
  if (!st.isDirectory()) fail('is not a directory');
  if (st.uid !== uid) fail(`owned by uid ${st.uid}, not uid ${uid} (the daemon's user): that user could plant files in it (chown ${uid} ${abs})`);
  if ((st.mode & 0o022) !== 0) fail(`writable by ${writers(st.mode)} (mode ${octal(st.mode)}) (chmod go-w ${abs})`);
  // The path as written and the real path: a symlink's parent decides who can repoint it.
  const seen = new Set<string>();
  for (const p of [...ancestors(abs), ...(real === abs ? [] : [real, ...ancestors(real)])]) {
    if (seen.has(p)) continue;
    seen.add(p);
    const why = p === real ? null : ancestorProblem(p, uid);
    if (why) fail(why);
  }
}
