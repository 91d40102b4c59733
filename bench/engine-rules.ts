// Matching cost of rules per service (issue 14): the same 1,000,000 sshd-like entries (90% noise,
// 10% failures) through the engine's matcher with
//   1 rule:   the shipped sshd.json alone;
//   8 rules:  sshd + 7 rules of other services whose filters do not select sshd's entries;
//   8 rules': sshd + a second rule selecting sshd's entries (connection scanners) + 6 others;
//   +20 off:  sshd + 20 disabled rules (they must cost nothing).
// Rounds alternate between the sets (a shared machine drifts); medians reported.
// Run: npx tsc -p . && node dist/bench/engine-rules.js [--rounds N] [--only '1 rule']
import { defaultConfig } from '../src/config';
import { makeEngine } from '../src/engine';
import { loadPatternFiles, parsePatternFile, shippedPatternsDir, type PatternFile } from '../src/patterns';
import type { JournalEntry } from '../src/journal';
import { sshdEntries } from './sshd-entries';

const item = (score: number, pattern: string) => ({ ban: 0, score, pattern });
/** Seven services' rules, as an administrator would write them: none selects sshd's entries. */
const OTHERS = [
  { name: 'postfix', unit: 'postfix@-', filter: ['SYSLOG_IDENTIFIER=postfix/smtpd', 'SYSLOG_IDENTIFIER=postfix/submission/smtpd'], limit: 5, ports: [25, 465, 587],
    items: ['^warning: [^\\[\\] ]+\\[<IP>\\]: SASL (?:LOGIN|PLAIN|CRAM-MD5) authentication failed: .*$', '^NOQUEUE: reject: RCPT from [^\\[\\] ]+\\[<IP>\\]: 554 .*$'] },
  { name: 'dovecot', filter: [['_EXE=/usr/lib/dovecot/auth', '_UID=0'], ['_EXE=/usr/sbin/dovecot', '_UID=0']], threshold: 1, ports: [143, 993, 110, 995],
    items: [item(0.2, '^(?:imap|pop3)-login: Disconnected.*\\(auth failed, \\d+ attempts?(?: in \\d+ secs)?\\): user=<[^>]*>, method=[A-Z0-9-]+, rip=<IP>, lip=[0-9a-f.:]+(?:, TLS)?(?:, session=<[^>]*>)?$')] },
  { name: 'nginx', unit: 'nginx', limit: 5, findtime: 600, ports: [80, 443],
    items: ['^\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d \\[error\\] \\d+#\\d+: \\*\\d+ user "[^"]*" was not found in "[^"]*", client: <IP>, server: .*$'] },
  { name: 'apache', unit: 'apache2', limit: 5, ports: [80, 443],
    items: ['^\\[[^\\]]*\\] \\[auth_basic:error\\] \\[pid \\d+(?::tid \\d+)?\\] \\[client <IP>:<PORT>\\] AH01617: user .*: authentication failure for "[^"]*": Password Mismatch$'] },
  { name: 'vsftpd', unit: 'vsftpd', limit: 3, bantime: 3600, ports: [21],
    items: ['^pam_unix\\(vsftpd:auth\\): authentication failure; logname=\\S* uid=\\d+ euid=\\d+ tty=ftp ruser=\\S* rhost=<IP>(?:  user=\\S*)?$'] },
  { name: 'proftpd', unit: 'proftpd', limit: 3, ports: [21],
    items: ['^\\S+ \\([^\\[\\]()]*\\[<IP>\\]\\) - USER \\S+ \\(Login failed\\): Incorrect password$'] },
  { name: 'gitea', unit: 'gitea', limit: 5, findtime: 300, ports: [3000],
    items: ['^.*Failed authentication attempt for \\S+ from <IP>:<PORT>: .*$'] },
];
/** A second rule on sshd's own entries (its filter selects every one of them). */
const SCANNERS = {
  name: 'sshd-scanners', bantime: 600, ports: [22],
  filter: [['_EXE=/usr/sbin/sshd', '_UID=0'], ['SYSLOG_IDENTIFIER=sshd', '_UID=0']],
  items: [item(0.5, '^banner exchange: Connection from <IP> port <PORT>: invalid format$'), item(0.3, '^Did not receive identification string from <IP> port <PORT>$')],
};

const file = (doc: object[], name: string): PatternFile[] => parsePatternFile(JSON.stringify(doc), name, `/bench/${name}`);
const sshd = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns').filter((f) => f.name === 'sshd.json');
const SETS: Record<string, PatternFile[]> = {
  '1 rule': sshd,
  '8 rules': [...sshd, ...file(OTHERS, 'others.json')],
  "8 rules'": [...file([SCANNERS], 'a-scanners.json'), ...sshd, ...file(OTHERS.slice(0, 6), 'others.json')],
  '1 + 20 off': [...sshd, ...file(Array.from({ length: 20 }, (_, i) => ({ ...OTHERS[i % 7], name: `off${i}`, enabled: false })), 'off.json')],
};

/** Entries per second of wall time and per CPU second (user + system: less shaken by other load). */
function run(files: PatternFile[], list: JournalEntry[]): { rate: number; cpuRate: number; matches: number } {
  const engine = makeEngine(defaultConfig(), files);
  const matcher = engine.matcher;
  let matches = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < list.length; i++) if (matcher.match(list[i]) !== null) matches++;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { rate: list.length / s, cpuRate: list.length / ((c.user + c.system) / 1e6), matches };
}

const opt = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ROUNDS = Number(opt('--rounds') ?? 7);
// --only NAME: one set (to compare builds, process against process)
const only = opt('--only');
if (only !== undefined) for (const name of Object.keys(SETS)) if (name !== only) delete SETS[name];
// _SYSTEMD_UNIT as journald records it for sshd: the other rules' filters read that field.
const list = sshdEntries(1_000_000, 50_000, { _SYSTEMD_UNIT: 'ssh.service' });
const rates = new Map<string, number[]>(Object.keys(SETS).map((k) => [k, []]));
const cpuRates = new Map<string, number[]>(Object.keys(SETS).map((k) => [k, []]));
const counts = new Map<string, number>();
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, files] of Object.entries(SETS)) {
    const { rate, cpuRate, matches } = run(files, list);
    rates.get(name)!.push(rate);
    cpuRates.get(name)!.push(cpuRate);
    counts.set(name, matches);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const k = (x: number) => `${Math.round(x / 1000).toLocaleString('en')}k`;
const first = [...rates.keys()][0];
const base = median(rates.get(first)!);
const cpuBase = median(cpuRates.get(first)!);
console.log(`${ROUNDS} rounds, medians; entries/s of wall time, and per CPU second; % vs ${first}`);
for (const name of rates.keys()) {
  const m = median(rates.get(name)!);
  const c = median(cpuRates.get(name)!);
  // Paired: each round's rate against the first set's in the same round (drift cancels out).
  const paired = median(rates.get(name)!.map((x, r) => x / rates.get(first)![r]));
  console.log(`${name.padEnd(11)} wall ${k(m).padStart(7)} (${((m / base - 1) * 100).toFixed(1).padStart(5)}%, paired ${((paired - 1) * 100).toFixed(1).padStart(5)}%)  ` +
    `cpu ${k(c).padStart(7)} (${((c / cpuBase - 1) * 100).toFixed(1).padStart(5)}%)  matches ${counts.get(name)}; wall runs ${rates.get(name)!.map(k).join(' ')}`);
}
