// Secrets of actions (a webhook's token and key, an SMTP password): each in a file of its own that
// only root may read, never in tallow.conf (which anyone may be allowed to read).
import * as fs from 'node:fs';
import { errText } from '../limits';

/** The token and key files: root's (or ours), not readable by others; first line, no newline. */
export function readSecret(key: string, file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new Error(`${key}=${file}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? errText(e)}`);
  }
  if ((st.mode & 0o077) !== 0) throw new Error(`${key}=${file}: readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  if (st.uid !== 0 && st.uid !== process.getuid?.()) throw new Error(`${key}=${file}: owned by uid ${st.uid}, expected root`);
  const first = fs.readFileSync(file, 'utf8').split('\n')[0].trim();
  if (first === '') throw new Error(`${key}=${file}: the first line is empty`);
  return first;
}
