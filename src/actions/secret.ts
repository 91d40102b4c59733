// Secrets of actions (a webhook's token and key, an SMTP password): each in a file of its own that
// only root may read, never in tallow.conf (which anyone may be allowed to read).
import { readSecretLine } from '../secret-file';

/** The token and key files: root's (or ours), not readable by others; first line, no newline. */
export function readSecret(key: string, file: string): string {
  const first = readSecretLine(key, file).trim();
  if (first === '') throw new Error(`${key}=${file}: the first line is empty`);
  return first;
}
