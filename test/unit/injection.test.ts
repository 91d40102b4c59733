// Log injection: attacker-chosen user names and client banners that embed an address. Through the
// shipped patterns, matcher and tracker: the real client address is scored, the injected one never.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPatternFiles, shippedPatternsDir } from '../../src/patterns';
import { Matcher } from '../../src/matcher';
import { Tracker } from '../../src/tracker';
import { Ledger } from '../../src/ledger';

const REAL = '198.51.100.50';
const VICTIM = '203.0.113.9';
const INJECTED = [
  `x from ${VICTIM} port 22 ssh2`,
  `x from ${VICTIM} port 22`,
  `${VICTIM} port 22 [preauth]`,
  `x ${VICTIM} port 22 [preauth]`,
  `for root from ${VICTIM} port 22 ssh2`,
  `x\nFailed password for root from ${VICTIM} port 22 ssh2`,
  `x\\012Failed password for root from ${VICTIM} port 22 ssh2`,
  `[${VICTIM}]:22 on [192.0.2.1]:22 penalty: x`,
  `x from ${VICTIM} port 22 ssh2: RSA SHA256:abc`,
  `x' from ${VICTIM} port 22`,
  `' from ${VICTIM}`,
  `from ${VICTIM}`,
  `x rhost=${VICTIM}`,
  `x ${VICTIM} port 22: Too many authentication failures`,
  `x ${VICTIM} port 22: Change of username or service not allowed: (x`,
  `x", client host "y" from ${VICTIM} port 22 ssh2: RSA SHA256:abc, client user "z`,
  `x (${VICTIM})`,
  `x from ${VICTIM} not allowed because listed in DenyUsers`,
  `x from ${VICTIM} via 192.0.2.1`,
  `${VICTIM} port 22:3: x`,
  `x from ${VICTIM}%eth0 port 22 ssh2`,
];
// Every sshd wording that carries attacker text, with %U% the attacker's text.
const TEMPLATES = [
  `Failed password for invalid user %U% from ${REAL} port 4000 ssh2`,
  `Failed publickey for invalid user %U% from ${REAL} port 4000 ssh2: ED25519 SHA256:Zm9vYmFy`,
  `Invalid user %U% from ${REAL} port 4000`,
  `Connection closed by invalid user %U% ${REAL} port 4000 [preauth]`,
  `Connection reset by invalid user %U% ${REAL} port 4000 [preauth]`,
  `error: maximum authentication attempts exceeded for invalid user %U% from ${REAL} port 4000 ssh2 [preauth]`,
  `error: PAM: Authentication failure for illegal user %U% from ${REAL}`,
  `Bad protocol version identification '%U%' from ${REAL} port 4000`,
  `Received disconnect from ${REAL} port 4000:3: %U% [preauth]`,
  `Unable to negotiate with ${REAL} port 4000: no matching key exchange method found. Their offer: %U% [preauth]`,
  // issue 13's wordings
  `error: Received disconnect from ${REAL} port 4000:14: %U% [preauth]`,
  `Received disconnect from ${REAL}: 3: %U% [preauth]`,
  `User %U% from ${REAL} not allowed because not listed in AllowUsers`,
  `Disconnecting invalid user %U% ${REAL} port 4000: Too many authentication failures [preauth]`,
  `Disconnecting authenticating user %U% ${REAL} port 4000: Bad packet length 1349676916. [preauth]`,
  `Failed unknown for invalid user %U% from ${REAL} port 4000 ssh2`,
  `Failed password for invalid user %U% from ${REAL} port 4000`,
  `Failed password for invalid user %U% from ${REAL}`,
  `error: PAM: authentication error for illegal user %U% from ${REAL} via 192.0.2.1`,
  `PAM: User not known to the underlying authentication module for illegal user %U% from ${REAL}  `,
  `[ID 800047 auth.info] Failed password for invalid user %U% from ${REAL} port 4000 ssh2`,
  `fatal: Unable to negotiate with ${REAL} port 4000: no matching cipher found. Their offer: %U% [preauth]`,
  `Bad protocol version identification %U% from ${REAL} port 4000`,
];
// Wordings with attacker text on both sides of the address: a payload with spaces (or quotes)
// leaves the line unmatched; it must never yield the victim.
const STRICT_TEMPLATES = [
  `Disconnecting invalid user %U% ${REAL} port 4000: Change of username or service not allowed: (%U%,ssh-connection) -> (%U%,ssh-connection) [preauth]`,
  `Failed hostbased for %U% from ${REAL} port 4000 ssh2: RSA SHA256:Zm9vYmFy, client user "%U%", client host "%U%"`,
  `refused connect from %U% (${REAL})`,
];

test('injection: the embedded address is never matched, the real one is', () => {
  const matcher = new Matcher(loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns'));
  const ledger = new Ledger({ emit: () => {} });
  const tracker = new Tracker({ threshold: 1, expires: 3600, maxRecords: 1000, isAllowed: () => false, bannedUntil: (a) => ledger.expiryOf(a) });
  const wrong: string[] = [];
  let real = 0;
  for (const t of TEMPLATES) {
    for (const u of INJECTED) {
      const message = t.replace('%U%', u);
      const m = matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: message, _EXE: '/usr/sbin/sshd', _UID: '0' } });
      if (m && m.address !== REAL) wrong.push(`${m.address} from ${JSON.stringify(message)}`);
      if (m) {
        real++;
        for (const d of tracker.observe(m, 0)) if (d.action === 'ban') ledger.ban({ ...d, origin: 'rule' }, 0);
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.equal(tracker.get(VICTIM), undefined);
  assert.ok(tracker.get(REAL)?.banned, 'the real client was not banned');
  // every template matches with most payloads (a newline may make a line unmatched, never wrong)
  assert.ok(real >= TEMPLATES.length * (INJECTED.length - 1), `only ${real} matches`);
});

test('injection: wordings with attacker text on both sides match plain names, never the embedded address', () => {
  const matcher = new Matcher(loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns'));
  const at = (message: string) => matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: message, _EXE: '/usr/sbin/sshd', _UID: '0' } })?.address;
  const wrong: string[] = [];
  for (const t of STRICT_TEMPLATES) {
    assert.equal(at(t.split('%U%').join('x')), REAL, t);
    for (const u of INJECTED) {
      const message = t.split('%U%').join(u);
      const got = at(message);
      if (got !== undefined && got !== REAL) wrong.push(`${got} from ${JSON.stringify(message)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('injection: a forged sshd line from an ordinary user (logger -t sshd) is not selected', () => {
  const matcher = new Matcher(loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns'));
  const msg = `Failed password for root from ${VICTIM} port 22 ssh2`;
  assert.equal(matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: msg, SYSLOG_IDENTIFIER: 'sshd', _UID: '1000', _EXE: '/usr/bin/logger' } }), null);
  assert.equal(matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: msg, SYSLOG_IDENTIFIER: 'sshd', _UID: '1000' } }), null);
  assert.equal(matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: msg, SYSLOG_IDENTIFIER: 'sshd', _UID: '0' } })?.address, VICTIM);
  assert.equal(matcher.match({ cursor: 'c', realtime: 0, fields: { MESSAGE: msg, _EXE: '/usr/lib/openssh/sshd-session', _UID: '0' } })?.address, VICTIM);
});
