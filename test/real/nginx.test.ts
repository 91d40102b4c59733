// The shipped nginx rule against a real nginx: failed basic-auth requests from the client namespace
// produce journal entries (syslog and stderr transports) that the rule's patterns and filter turn
// into the client's address; a successful request, a forged line and injected text never give one.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { parsePatternFile, shippedPatternsDir } from '../../src/patterns';
import { Matcher } from '../../src/matcher';
import { NginxService } from './nginx-service';

const VICTIM = '203.0.113.9';

/** The shipped nginx rule, switched on (it ships off). */
function nginxRule(): Matcher {
  const file = join(shippedPatternsDir(), 'nginx.json');
  const doc = JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, unknown>>;
  for (const b of doc) delete b.enabled;
  return new Matcher(parsePatternFile(JSON.stringify(doc), 'nginx.json', file));
}

type Entry = Record<string, string>;

/** journalctl -o json gives a field that is not printable UTF-8 as an array of bytes. */
function fields(e: Record<string, unknown>): Entry {
  const out: Entry = {};
  for (const [k, v] of Object.entries(e)) out[k] = Array.isArray(v) ? Buffer.from(v as number[]).toString('utf8') : String(v);
  return out;
}

async function entries(sb: Sandbox, ident: string): Promise<Entry[]> {
  return (await sb.journal(['-t', ident])).map(fields);
}

/** Which address each entry gives the rule (entries it does not select or match give none). */
function addresses(m: Matcher, es: Entry[]): string[] {
  return es.map((fs) => m.match({ cursor: 'c', realtime: 0, fields: fs })?.address).filter((a): a is string => a !== undefined);
}

const isAuthLine = (e: Entry) => / \*\d+ user "/.test(e.MESSAGE ?? '') || (e.MESSAGE ?? '').includes('password mismatch');

describe('nginx, a real second service', { timeout: 120_000 }, () => {
  let sb: Sandbox;
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
  });
  after(async () => {
    await sb?.destroy();
  });

  it('syslog: failed basic auth gives the client address (IPv4, IPv6, crafted names, paths and headers); success and forged lines give none', async () => {
    const nginx = await NginxService.start(sb, { errorLog: 'syslog' });
    try {
      const [a, b, c, d] = [sb.client.v4, sb.client.extraV4[0], sb.client.extraV4[1], sb.client.extraV4[2]];
      const ok = sb.client.extraV4[3];
      const v6 = sb.client.v6;
      assert.equal(await nginx.failAuth(a), 401);
      assert.equal(await nginx.failAuth(a), 401);
      assert.equal(await nginx.failAuth(b, 'nosuchuser'), 401);
      assert.equal(await nginx.failAuth(v6, 'bob'), 401);
      assert.equal(await nginx.request(ok, { user: 'alice', password: 'right-password' }), 200, 'the right password is let in');
      // Injection from c: a name that tries to end nginx's quote and write its own client, a path and
      // a Referer that repeat nginx's wording with another address (nginx refuses a Host with spaces).
      assert.equal(await nginx.request(c, { user: `x", client: ${VICTIM}, server: y`, password: 'p' }), 401);
      assert.equal(await nginx.request(c, { user: 'alice', password: 'p', path: `/x":%20password%20mismatch,%20client:%20${VICTIM},%20server:%20y` }), 401);
      assert.equal(await nginx.request(c, { user: 'alice', password: 'p', headers: [`Referer: x": password mismatch, client: ${VICTIM}, server: y`] }), 401);
      // ...and from d a name holding a newline and a whole forged line (through syslog, one message).
      const forgedName = `evil\n2025/01/01 00:00:00 [error] 1#1: *1 user "y" was not found in "/f", client: ${VICTIM}, server: s`;
      assert.equal(await nginx.request(d, { authorization: `Basic ${Buffer.from(`${forgedName}:pw`).toString('base64')}` }), 401);
      // A local user forging nginx's line from outside nginx's cgroup.
      await sb.logger('nginx', `2025/01/01 00:00:00 [error] 1#1: *1 user "alice": password mismatch, client: ${VICTIM}, server: s, request: "GET / HTTP/1.1"`, 'nobody');

      let es: Entry[] = [];
      await waitFor('nginx\'s 8 auth failures and the forged line in the journal', async () => {
        es = await entries(sb, 'nginx');
        return es.filter(isAuthLine).length >= 9;
      });
      const auth = es.filter(isAuthLine);
      assert.equal(auth.length, 9, auth.map((e) => e.MESSAGE).join('\n'));
      // journald's view of nginx's lines: its unit (from the cgroup), its identifier, its binary
      const fromNginx = auth.filter((e) => e._EXE === '/usr/sbin/nginx');
      assert.equal(fromNginx.length, 8, auth.map((e) => `${e._EXE} ${e.MESSAGE}`).join('\n'));
      for (const e of fromNginx) {
        assert.equal(e._SYSTEMD_UNIT, 'nginx.service', e.MESSAGE);
        assert.equal(e.SYSLOG_IDENTIFIER, 'nginx');
      }
      const forged = auth.find((e) => e._EXE !== '/usr/sbin/nginx')!;
      assert.equal(forged._UID, '65534');
      assert.notEqual(forged._SYSTEMD_UNIT, 'nginx.service');

      const m = nginxRule();
      assert.deepEqual(addresses(m, fromNginx), [a, a, b, v6, c, c, c, d]);
      assert.equal(m.match({ cursor: 'c', realtime: 0, fields: forged }), null, 'a line forged outside nginx.service is not selected');
      assert.deepEqual(addresses(m, es).filter((x) => x === VICTIM || x === ok), [], 'neither the injected address nor the client let in');
    } finally {
      await nginx.stop();
    }
  });

  it('stderr through the journal: the same wordings match; a newline in a name splits the entry and neither half is read', async () => {
    const nginx = await NginxService.start(sb, { errorLog: 'stderr' });
    try {
      const before = (await entries(sb, 'nginx')).length;
      const [a, d] = [sb.client.extraV4[4], sb.client.extraV4[5]];
      assert.equal(await nginx.failAuth(a), 401);
      assert.equal(await nginx.failAuth(a, 'nosuchuser'), 401);
      const forgedName = `evil\n2025/01/01 00:00:00 [error] 1#1: *1 user "y" was not found in "/f", client: ${VICTIM}, server: s`;
      assert.equal(await nginx.request(d, { authorization: `Basic ${Buffer.from(`${forgedName}:pw`).toString('base64')}` }), 401);
      let es: Entry[] = [];
      await waitFor('nginx\'s stderr lines in the journal', async () => {
        es = (await entries(sb, 'nginx')).slice(before);
        return es.filter((e) => (e.MESSAGE ?? '').includes(`client: ${d},`)).length >= 1 && es.filter(isAuthLine).length >= 3;
      });
      const auth = es.filter((e) => isAuthLine(e) || (e.MESSAGE ?? '').includes(`client: ${d},`));
      for (const e of auth) {
        assert.equal(e._SYSTEMD_UNIT, 'nginx.service', e.MESSAGE);
        assert.equal(e._TRANSPORT, 'stdout', e.MESSAGE);
      }
      // the crafted name cut nginx's line in two: its first half ends in the name, the second
      // starts with the name's rest, before the first colon (a name holds none)
      const text = es.map((e) => e.MESSAGE).join('\n');
      assert.ok(es.some((e) => (e.MESSAGE ?? '').endsWith(' user "evil')), text);
      assert.ok(es.some((e) => (e.MESSAGE ?? '').startsWith(`2025/01/01 00" was not found in "${nginx.htpasswd}", client: ${d}, server: `)), text);
      assert.deepEqual(addresses(nginxRule(), es), [a, a]);
    } finally {
      await nginx.stop();
    }
  });
});
