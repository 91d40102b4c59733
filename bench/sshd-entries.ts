// The synthetic sshd journal shared by the engine benchmarks: n entries, 90% lines the rules must
// skip and 10% failures spread over `addresses` attackers (one in seven IPv6).
import type { JournalEntry } from '../src/journal';

const NOISE = [
  'pam_unix(sshd:session): session opened for user alice(uid=1000) by alice(uid=0)',
  'Accepted publickey for alice from 192.0.2.10 port 50022 ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4',
  'Received disconnect from 192.0.2.10 port 50022:11: disconnected by user',
  'Disconnected from user alice 192.0.2.10 port 50022',
  'pam_unix(sshd:session): session closed for user alice',
  'Server listening on 0.0.0.0 port 22.',
];
const v4 = (i: number) => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
const FAIL = [
  (a: string, i: number) => `Failed password for invalid user user${i} from ${a} port ${1024 + (i % 60000)} ssh2`,
  (a: string, i: number) => `Invalid user user${i} from ${a} port ${1024 + (i % 60000)}`,
  (a: string, i: number) => `Connection closed by authenticating user root ${a} port ${1024 + (i % 60000)} [preauth]`,
  (a: string) => `Failed password for root from ${a} port 22 ssh2`,
];

export function sshdEntries(n: number, addresses: number, extra: Record<string, string> = {}): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (let i = 0; i < n; i++) {
    const k = (i * 2654435761) >>> 0;
    const message = i % 10 === 0
      ? FAIL[k % FAIL.length](k % 7 === 0 ? `2001:db8::${(k % addresses).toString(16)}` : v4(k % addresses), i)
      : NOISE[k % NOISE.length];
    out.push({ cursor: '', realtime: i, fields: { MESSAGE: message, _EXE: '/usr/sbin/sshd', _UID: '0', SYSLOG_IDENTIFIER: 'sshd', ...extra } });
  }
  return out;
}
