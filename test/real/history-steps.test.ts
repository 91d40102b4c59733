// Repeat offenders per rule in a real daemon (issue 15.3), with short bantimes, in a sandbox with
// its own journald and kernel sets: tallow.conf doubles every repeat offender's ban; rule sshd caps
// its own at bantime_max 3 s, rule other turns bantime_increment off. Each rule's second ban of an
// address is then 3 s (in the kernel too) and 2 s: the rule keys, not tallow.conf, decide.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { DaemonProc, ipsetTimeout, SSHD_FILTER, writeConfig } from './e2e-daemon';

let sb: Sandbox;
let d: DaemonProc | null = null;

async function attack(tag: string, line: string): Promise<void> {
  const r = await sb.run(['logger', '-t', tag, line]);
  assert.equal(r.code, 0, r.stderr);
}

const esc = (s: string) => s.replace(/[.[\]]/g, '\\$&');

describe('repeat offenders per rule in a real daemon', { timeout: 120_000 }, () => {
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
  });
  after(async () => {
    if (d && !d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  it("each rule's second ban follows its own keys: sshd capped at 3 s, other not stepped", async () => {
    const conf = writeConfig(sb, 'steps', ['expires=3', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1', 'bantime_increment=2', 'recidive_window=1h', 'bantime_max=1h']);
    const patterns = path.join(sb.dir, 'steps', 'patterns');
    fs.writeFileSync(path.join(patterns, 'sshd.json'), JSON.stringify([
      { name: 'sshd', filter: SSHD_FILTER, threshold: 1, bantime: 2, bantime_max: 3, items: [{ ban: 0, score: 1, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] },
    ]));
    fs.writeFileSync(path.join(patterns, 'other.json'), JSON.stringify([
      { name: 'other', filter: [['SYSLOG_IDENTIFIER=other', '_UID=0']], threshold: 1, bantime: 2, items: [{ ban: 0, score: 1, pattern: '^bad login from <IP>$' }] },
    ]));
    // An override block, as an administrator would write it beside the rule's own file.
    fs.writeFileSync(path.join(patterns, 'zz-local.json'), JSON.stringify([{ name: 'other', bantime_increment: 'off' }]));
    const a = '203.0.113.61';
    const b = '203.0.113.62';
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();

    await attack('sshd', `Failed password for root from ${a} port 4000 ssh2`);
    await attack('other', `bad login from ${b}`);
    await d.waitLine('sshd first ban, 2 s', new RegExp(`ban address=${esc(a)} seconds=2 .*reason=threshold rule=sshd$`));
    await d.waitLine('other first ban, 2 s', new RegExp(`ban address=${esc(b)} seconds=2 .*reason=threshold rule=other$`));
    await d.waitLine('expiries', new RegExp(`unban address=${esc(a)} reason=expired`), 15_000);
    await d.waitLine('expiries', new RegExp(`unban address=${esc(b)} reason=expired`), 15_000);

    await attack('sshd', `Failed password for root from ${a} port 4000 ssh2`);
    await attack('other', `bad login from ${b}`);
    // tallow.conf's factor 2 would give 4 s; the rule's bantime_max gives 3.
    await d.waitLine('sshd second ban, capped at 3 s', new RegExp(`ban address=${esc(a)} seconds=3 .*reason=threshold step=1 rule=sshd$`));
    let left: number | null = null;
    await waitFor('the second sshd ban in the kernel', async () => (left = await ipsetTimeout(sb, a)) !== null, 5000, 50);
    assert.ok(left! > 0 && left! <= 3, `kernel timeout ${left}`);
    // The override turned the steps off for rule other: 2 s again, no step.
    await d.waitLine('other second ban, not stepped', new RegExp(`ban address=${esc(b)} seconds=2 score=\\S+ count=\\S+ pattern=other\\.json#1 reason=threshold rule=other$`));
    d.kill('SIGTERM');
    assert.equal((await d.wait()).code, 0);
  });
});
