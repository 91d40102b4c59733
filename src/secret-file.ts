// A secret kept in a file of its own (a database password, a webhook's token, an SMTP password):
// the administrator's, so root's (or ours) and readable by nobody else.
import * as fs from 'node:fs';
import { errText } from './limits';

/** The file's first line, after checking its owner and mode. `key`: the setting that named it. */
export function readSecretLine(key: string, file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new Error(`${key}=${file}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? errText(e)}`);
  }
  if ((st.mode & 0o077) !== 0) throw new Error(`${key}=${file}: readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  if (st.uid !== 0 && st.uid !== process.getuid?.()) throw new Error(`${key}=${file}: owned by uid ${st.uid}, expected root`);
  return fs.readFileSync(file, 'utf8').split('\n')[0];
}
