// A real MTA for the mail tests: Debian's exim4-daemon-light, fetched with `apt-get download` (not
// installed: the host's mail system is never touched) and unpacked into the test's directory, run
// in a mount namespace of its own (overlays add exim4 and the libraries it needs to /usr/sbin and
// /usr/lib; /etc/passwd gains its Debian-exim user there only), with a configuration that delivers
// every mail to one mbox file in the test's directory. Two ways in: `sendmail -t -oi` (a wrapper
// tallow runs as it would run /usr/sbin/sendmail), and, when asked, SMTP on an address of a
// sandbox's network namespace (STARTTLS with a self-signed certificate, AUTH PLAIN over TLS only).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { program } from '../unit/actions-helpers';

const LIBDIR = '/usr/lib/x86_64-linux-gnu';
const EXIM_UID = 61_000;

export interface SmtpOptions {
  /** the address exim listens on (one of the sandbox's namespace addresses) */
  host: string;
  port: number;
  /** AUTH PLAIN user and password (offered only after STARTTLS) */
  user: string;
  password: string;
}

export interface Exim {
  sendmail: string;
  mailbox: string;
  log: string;
  /** The SMTP listener's argv (run it in the namespace holding smtp.host), with the CA the client trusts. */
  smtp?: { argv: string[]; cert: string };
}

/** exim4 unpacked, with a sendmail wrapper entering its own mount namespace. */
export function exim(dir: string, smtp?: SmtpOptions): Exim {
  const debs = path.join(dir, 'debs');
  const root = path.join(dir, 'root');
  fs.mkdirSync(debs);
  // libidn12 is not on every Debian system and exim4 needs it: fetched beside it either way.
  try {
    execFileSync('apt-get', ['download', 'exim4-daemon-light', 'libidn12'], { cwd: debs, stdio: 'pipe' });
  } catch (e) {
    throw new Error(`apt-get download exim4-daemon-light libidn12 failed (run apt-get update once): ${(e as { stderr?: Buffer }).stderr?.toString() ?? e}`);
  }
  for (const f of fs.readdirSync(debs)) execFileSync('dpkg-deb', ['-x', path.join(debs, f), root]);
  assert.ok(fs.existsSync(path.join(root, 'usr/sbin/exim4')));
  // exim switches to its own user (Debian-exim) for the spool and the mailbox: it must get through.
  fs.chmodSync(dir, 0o755);
  const w = path.join(dir, 'exim');
  for (const d of ['spool', 'log', 'mail']) fs.mkdirSync(path.join(w, d), { recursive: true });
  fs.chownSync(path.join(w, 'spool'), EXIM_UID, EXIM_UID);
  fs.chownSync(path.join(w, 'log'), EXIM_UID, EXIM_UID);
  fs.chmodSync(path.join(w, 'mail'), 0o1777);
  fs.writeFileSync(path.join(w, 'passwd'), fs.readFileSync('/etc/passwd', 'utf8') + `Debian-exim:x:${EXIM_UID}:${EXIM_UID}::/nonexistent:/usr/sbin/nologin\n`);
  fs.writeFileSync(path.join(w, 'group'), fs.readFileSync('/etc/group', 'utf8') + `Debian-exim:x:${EXIM_UID}:\n`);
  const conf = path.join(w, 'exim.conf');
  const mailbox = path.join(w, 'mail', 'mailbox');
  let cert = '';
  let smtpMain = '';
  let smtpTail = '';
  if (smtp) {
    // A self-signed certificate for the listener's address; the exim user reads the key.
    cert = path.join(w, 'cert.pem');
    const key = path.join(w, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tallow-test.example', '-addext', `subjectAltName=IP:${smtp.host}`, '-keyout', key, '-out', cert], { stdio: 'pipe' });
    fs.chownSync(key, EXIM_UID, EXIM_UID);
    smtpMain = `daemon_smtp_ports = ${smtp.port}
local_interfaces = <; ${smtp.host}
tls_advertise_hosts = *
tls_certificate = ${cert}
tls_privatekey = ${key}
acl_smtp_rcpt = rcpt
host_lookup =
rfc1413_hosts =
`;
    smtpTail = `begin acl
rcpt:
  accept authenticated = *
  deny message = authentication required
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_advertise_condition = \${if def:tls_in_cipher}
  server_condition = \${if and {{eq{$auth2}{${smtp.user}}}{eq{$auth3}{${smtp.password}}}}}
  server_set_id = $auth2
`;
  }
  fs.writeFileSync(
    conf,
    `primary_hostname = tallow-test.example
qualify_domain = tallow-test.example
domainlist local_domains = tallow-test.example : example.org : localhost
spool_directory = ${w}/spool
log_file_path = ${w}/log/%slog
never_users =
trusted_users = root
${smtpMain}${smtpTail}begin routers
local:
  driver = accept
  domains = +local_domains
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = ${mailbox}
  user = Debian-exim
  delivery_date_add
  envelope_to_add
  return_path_add
begin retry
* * F,1h,1m
`,
  );
  const mounts = [
    `mount --bind ${w}/passwd /etc/passwd`,
    `mount --bind ${w}/group /etc/group`,
    `mount -t overlay tallow-exim -o lowerdir=${root}${LIBDIR}:${LIBDIR} ${LIBDIR}`,
    `mount -t overlay tallow-exim -o lowerdir=${root}/usr/sbin:/usr/sbin /usr/sbin`,
  ];
  const inner = [...mounts, `exec /usr/sbin/exim4 -C ${conf} -odi "$@"`].join(' && ');
  // The wrapper is the test's; tallow runs it as it would run /usr/sbin/sendmail (an argv, no shell).
  const sendmail = program(w, 'sendmail', `#!/bin/sh\nexec unshare --mount --propagation private sh -c '${inner}' sendmail "$@"\n`);
  const out: Exim = { sendmail, mailbox, log: path.join(w, 'log', 'mainlog') };
  if (smtp) {
    // -bdf: the listening daemon in the foreground (its PID is the test's to end); -odi: deliver at once.
    const daemon = [...mounts, `exec /usr/sbin/exim4 -C ${conf} -bdf -odi`].join(' && ');
    out.smtp = { argv: ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', daemon], cert };
  }
  return out;
}

/** An mbox as a mail reader splits it: each message after its `From ` line. */
export function messages(mbox: string): string[] {
  if (!fs.existsSync(mbox)) return [];
  return fs
    .readFileSync(mbox, 'utf8')
    .split(/^From \S+ .*\n/m)
    .filter((m) => m.trim())
    .map((m) => m.replace(/\n+$/, '\n'));
}

/** exim's main log, for assertion messages. */
export function eximLog(e: Exim): string {
  return fs.existsSync(e.log) ? fs.readFileSync(e.log, 'utf8') : 'no exim log';
}

