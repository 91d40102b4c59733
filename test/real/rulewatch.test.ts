// The addon's nftables notifications (native/rulewatch.cc) against the real kernel, in a network
// namespace of its own: a child process in the namespace watches deletions while this test
// changes tables, chains, rules, sets and set elements with nft and iptables-nft.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { NFT_MSG_DELCHAIN, NFT_MSG_DELRULE, NFT_MSG_DELSET, NFT_MSG_DELTABLE } from '../../src/firewall/monitor';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const NS = `tallow-rw-${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The child: counts what the watch reports, prints it when asked; `end` lets go of stdin, its last
// handle besides the (still open) watch, which must not keep the process alive by itself.
const CHILD = `
const { addon } = require(${JSON.stringify(path.join(ROOT, 'dist/src/addon.js'))});
let seen = 0, calls = 0;
const w = new (addon().RuleWatch)(${JSON.stringify([NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE, NFT_MSG_DELSET])}, (n) => { calls++; seen += n; });
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  for (const cmd of d.split('\\n').filter(Boolean)) {
    if (cmd === 'count') console.log(JSON.stringify({ seen, calls }));
    if (cmd === 'end') { process.stdin.destroy(); console.log('ending'); }
  }
});
console.log('ready');
`;

let child: ChildProcess;
let out = '';

async function line(re: RegExp, ms = 5000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const m = out.split('\n').find((l) => re.test(l));
    if (m) {
      out = out.slice(out.indexOf(m) + m.length + 1);
      return m;
    }
    assert.ok(Date.now() < end, `no ${re} from the child within ${ms} ms; it wrote: ${out}`);
    await sleep(20);
  }
}

/** What the watch reported, once the kernel has had time to deliver (notifications are asynchronous). */
async function count(): Promise<{ seen: number; calls: number }> {
  await sleep(300);
  child.stdin!.write('count\n');
  return JSON.parse(await line(/^\{/));
}

const nft = (script: string) => execFileSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { input: script });
const inNs = (...argv: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...argv]);

before(async () => {
  execFileSync('ip', ['netns', 'add', NS]);
  child = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await line(/^ready$/);
});

after(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  execFileSync('ip', ['netns', 'delete', NS]);
});

test('additions and set elements (bans, unbans) are not reported; rule, chain, set and table deletions are, from nft and iptables-nft alike', async () => {
  nft(['add table inet t', 'add chain inet t c { type filter hook input priority 0; }', 'add set inet t s { type ipv4_addr; flags timeout; }',
    'add rule inet t c ip saddr @s drop', 'add element inet t s { 192.0.2.1 timeout 1h, 192.0.2.2 }', ''].join('\n'));
  nft('delete element inet t s { 192.0.2.1 }\n');
  assert.deepEqual(await count(), { seen: 0, calls: 0 });

  nft('flush chain inet t c\n'); // one rule deleted
  assert.equal((await count()).seen, 1);

  inNs('iptables', '-w', '-A', 'INPUT', '-s', '198.51.100.7', '-j', 'DROP');
  inNs('iptables', '-w', '-A', 'INPUT', '-s', '198.51.100.8', '-j', 'DROP');
  const before = (await count()).seen;
  inNs('iptables', '-w', '-F', 'INPUT'); // iptables-nft: two nftables rules deleted
  assert.equal((await count()).seen, before + 2);

  nft('delete table inet t\n'); // its chain, its set and itself
  const last = await count();
  assert.equal(last.seen, before + 2 + 3);
});

test('an open watch does not keep its process alive', async () => {
  // Listened for before asking: the child may end while line() sleeps between its looks.
  const ended = new Promise((r) => child.once('exit', () => r(true)));
  child.stdin!.write('end\n');
  await line(/^ending$/);
  const exited = await Promise.race([ended, sleep(5000).then(() => false)]);
  assert.equal(exited, true, 'the child ended by itself once its stdin closed');
});
