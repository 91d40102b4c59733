// Rules per service end to end (issue 14): a real sshd and a real nginx with basic auth in the
// sandbox's server namespace, attacked from the client namespace; the built CLI bans each
// attacker by its own rule's threshold, findtime, ports and prefix, per backend. The proof is the
// kernel's: which TCP ports the attacker can still reach.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, sleep, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, writeConfig } from './e2e-daemon';
import { NginxService } from './nginx-service';

const FAILED = '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$';
// sshd.json replaces the shipped one: root's failures ban on every port, anyone else's on 22 only.
const SSHD_RULES = [
  { name: 'sshd-root', filter: SSHD_FILTER, threshold: 1, ports: 'all', bantime: 120, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for root from <IP> port <PORT> ssh2$' }] },
  { name: 'sshd', filter: SSHD_FILTER, threshold: 1, ports: [22], bantime: 120, items: [{ ban: 0, score: 0.5, pattern: FAILED }] },
];
// The shipped nginx rule (off) switched on by an override: 2 failures within 4 s, /64 for IPv6.
const NGINX_ON = [{ name: 'nginx', enabled: true, threshold: 0.4, findtime: 4, bantime: 120, ban_prefix_v6: 64 }];

for (const backend of ['ipset', 'nftables', 'firewalld'] as const) {
  describe(`rules per service, ${backend}`, { timeout: 400_000 }, () => {
    let sb: Sandbox;
    let nginx: NginxService | null = null;
    let d: DaemonProc | null = null;
    let conf = '';

    const reaches = async (source: string, port: number) => (port === 80 ? (await nginx!.request(source, { timeoutSec: 2 })) !== 0 : sb.canConnect(source, port));
    const banLine = (address: string, rule: string) => new RegExp(`ban address=${address.replace(/[.:/]/g, (c) => `\\${c}`)} .*rule=${rule}\\b`);
    const sshFail = async (source: string, user: string, times: number) => {
      for (let i = 0; i < times; i++) assert.notEqual((await sb.failLogin(source, user)).code, 0);
    };

    before(async () => {
      sb = await createSandbox({ sshd: true, firewalld: backend === 'firewalld' });
      nginx = await NginxService.start(sb, { ports: [80] });
      // firewalld's default zone lets in ssh only: open the web port as its administrator would
      // (permanently: the daemon's set-up reloads firewalld, which drops runtime changes).
      if (backend === 'firewalld') {
        await sb.check(['firewall-cmd', '--permanent', '--add-port=80/tcp'], { net: 'server' });
        await sb.check(['firewall-cmd', '--reload'], { net: 'server' });
      }
      conf = writeConfig(sb, 'r', [`backend=${backend}`, 'ipv6=1', 'expires=120', 'threshold=1', 'whitelist=127.0.0.1', 'history=off']);
      const patterns = path.join(sb.dir, 'r', 'patterns');
      fs.writeFileSync(path.join(patterns, 'sshd.json'), JSON.stringify(SSHD_RULES, null, 2));
      fs.writeFileSync(path.join(patterns, 'nginx-on.json'), JSON.stringify(NGINX_ON));
      d = new DaemonProc(sb, ['--config', conf]);
      await d.ready(backend === 'firewalld' ? 180_000 : 30_000);
    });
    after(async () => {
      await d?.stop();
      await nginx?.stop();
      await sb?.destroy();
    });

    it('says which rules run and which are off; the rules that are off get no sets', () => {
      assert.ok(d!.has(/info: rule sshd: threshold 1, bantime 120 s, ports 22 /), d!.output);
      assert.ok(d!.has(/info: rule nginx: threshold 0\.4, findtime 4 s, bantime 120 s, ports 80,443 /), d!.output);
      assert.ok(d!.has(/info: rules off: apache, dovecot, postfix, proftpd, sshd-logins, sshd-scanners, vsftpd /), d!.output);
      assert.ok(d!.has(/firewall ready .*tallow_p22\b/), d!.output);
      assert.equal(d!.has(/firewall ready .*tallow_p25_465_587/), false, 'no set for the postfix rule that is off');
    });

    it('a rule on port 22 drops 22 only: the attacker still reaches the web server', async () => {
      const a = sb.client.extraV4[0]; // 192.0.2.3
      assert.ok(await reaches(a, 22), 'port 22 open before');
      assert.equal(await nginx!.request(a), 401, 'port 80 open before');
      await sshFail(a, 'alice', 2);
      await d!.waitLine('the sshd ban', banLine(a, 'sshd'));
      await waitFor(`${a} dropped on 22\n${d!.output}`, async () => !(await reaches(a, 22)), 10_000, 200);
      assert.equal(await nginx!.request(a), 401, 'port 80 still answers (401: no password given)');
    });

    it('a rule on every port drops both', async () => {
      const b = sb.client.extraV4[1]; // 192.0.2.4
      await sshFail(b, 'root', 2);
      await d!.waitLine('the sshd-root ban', banLine(b, 'sshd-root'));
      await waitFor(`${b} dropped on 22`, async () => !(await reaches(b, 22)), 10_000, 200);
      assert.equal(await reaches(b, 80), false, 'port 80 dropped too');
    });

    it('findtime: failures further apart than the window do not add up; two inside it ban on 80 and 443 only', async () => {
      const c = sb.client.extraV4[2]; // 192.0.2.5
      assert.equal(await nginx!.failAuth(c), 401);
      await sleep(5000); // past findtime=4
      assert.equal(await nginx!.failAuth(c), 401);
      await sleep(1500);
      assert.equal(d!.has(banLine(c, 'nginx')), false, `banned although the failures were 5 s apart:\n${d!.output}`);
      assert.equal(await nginx!.failAuth(c), 401);
      await d!.waitLine('the nginx ban', banLine(c, 'nginx'));
      await waitFor(`${c} dropped on 80`, async () => !(await reaches(c, 80)), 10_000, 200);
      assert.ok(await reaches(c, 22), 'ssh still reachable');
    });

    it('ban_prefix_v6=64: two addresses of one /64 count as one attacker, and the whole /64 is dropped', async () => {
      const [x, y, z] = sb.client.net2V6; // 2001:db8:0:2::2, ::3, ::99
      assert.equal(await nginx!.failAuth(x), 401);
      assert.equal(await nginx!.failAuth(y), 401);
      await d!.waitLine('the /64 ban', banLine('2001:db8:0:2::/64', 'nginx'));
      await waitFor(`${z} dropped on 80`, async () => !(await reaches(z, 80)), 10_000, 200);
      assert.ok(await reaches(z, 22), 'ssh still reachable from the network');
      const list = spawnSync(process.execPath, [CLI, 'list', '--json', '--config', conf], { encoding: 'utf8' });
      assert.equal(list.status, 0, list.stderr);
      const text = list.stdout;
      assert.match(text, /2001:db8:0:2::\/64/);
      assert.doesNotMatch(text, /2001:db8:0:2::[23]"/, 'the addresses themselves are not banned one by one');
    });
  });
}
