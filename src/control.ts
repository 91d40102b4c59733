// The control socket: newline-delimited JSON over a UNIX socket, one request per line, one
// response per line. The daemon serves requests through a handler; `tallow status|list|ban|unban`
// are clients (ctl.ts). The server validates every request before the handler sees it, so the
// handler only ever gets well-formed commands with canonical addresses.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseAddress, type Family } from './address';
import { canonicalTarget } from './target';
import { parseJson } from './json';
import { MAX_BAN_SECONDS } from './limits';
import { checkPrivateDir } from './private-dir';
import { validateHistory, type HistoryRequest } from './history/query';
import { parseSettingValue, splitKey } from './runtime-settings';
import { validateAllow, type AllowRequest } from './allow-control';

export type ControlRequest =
  | { cmd: 'status' }
  /** every ban, or those of one rule */
  | { cmd: 'list'; rule?: string }
  | { cmd: 'metrics' }
  /** `address`: an address or a network; `rule`: on that rule's ports, in its name */
  | { cmd: 'ban'; address: string; seconds?: number; rule?: string }
  /** `address`: an address (every ban of it, in every scope) or a network banned as such */
  | { cmd: 'unban'; address: string; all?: undefined; fleet?: boolean }
  /** every ban there is */
  | { cmd: 'unban'; all: true; address?: undefined }
  /** every rule, or the one named */
  | { cmd: 'rules'; name?: string }
  /** the running allowlist; entries added or removed at runtime (allow-control.ts) */
  | AllowRequest
  /** tallow.conf and the patterns read again (as SIGHUP) */
  | { cmd: 'reload' }
  /** `key`: RULE.threshold, RULE.bantime or RULE.findtime */
  | { cmd: 'get'; key: string }
  /** `value`: the setting's (a score, or whole seconds), checked */
  | { cmd: 'set'; key: string; value: number }
  | HistoryRequest;

/** `exitCode`: the status the client exits with (78: a reload refused for a configuration error); default 1. */
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string; exitCode?: number };

/**
 * The handler receives validated requests only: `address` is canonical (parseAddress: IPv4-mapped
 * IPv6 as IPv4, IPv6 in RFC 5952 form); `seconds`, when present, is an integer in
 * 1..MAX_BAN_SECONDS (absent: the daemon's `expires`). A thrown error becomes {ok:false,error}.
 */
export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

// ---- Result shapes (the daemon's handler returns these as `result`; ctl.ts prints them) ----

/** `status` */
export interface StatusResult {
  version: string;
  pid: number;
  /** seconds since the daemon started */
  uptime: number;
  /** firewall backend name, e.g. 'ipset', 'nftables', 'firewalld', 'dryrun' */
  backend: string;
  /** journal entries read since start */
  entries: number;
  /** entries a pattern matched since start */
  matches: number;
  /** addresses banned now (as the daemon knows them) */
  bansActive: number;
  /** records tracked now */
  records: number;
  /** journal cursor of the last entry read, null before the first */
  cursor: string | null;
  /** optional extras the daemon may fill in; printed when present */
  config?: string | null;
  stateFile?: string;
  /** ms since epoch of the last successful state save, null if none yet */
  lastSave?: number | null;
  /** one line per rule: matches and bans in force */
  rules?: { name: string; enabled: boolean; matches: number; bansActive: number }[];
  /** fleet= (src/fleet/subscriber.ts FleetStatus): absent when the fleet is off */
  fleet?: {
    node: string;
    where: string;
    connected: boolean;
    since: number | null;
    lastError: string | null;
    nodesSeen: string[];
    lastId: number;
    remoteApplied: number;
    ignoredAllowlisted: number;
    ignoredCapped: number;
    quorumWaiting: number;
    published: number;
    queued: number;
    dropped: number;
    quorum: number;
    accept: boolean;
  };
}

/** One item of `list` (result: ListItem[]), sorted by the daemon as it likes; ctl sorts by remaining. */
export interface ListItem {
  /** the address, or the network banned (a rule with a ban prefix: `2001:db8::/64`) */
  address: string;
  family: Family;
  /** the rule that made the ban; null: by hand, adopted from the kernel, or from an older state file */
  rule?: string | null;
  /** where it applies: `all` (every port) or the ports (`22`, `25,465,587/tcp`) */
  ports?: string;
  /** Scope id ('' every port) */
  scope?: string;
  /** seconds left on the ban */
  remaining: number;
  /** current score of the record (0 when there is no record, e.g. a manual ban) */
  score: number;
  /** matches counted on the record */
  count: number;
  /** pattern that caused the ban (`sshd.json#3`), 'manual' for `tallow ban`, null if unknown */
  pattern: string | null;
  /** where the ban came from: rule, manual, adopted (found in the kernel at start), remote:NODE */
  origin?: string;
  /** threshold, instant, manual, adopted, recidive */
  reason?: string;
  /** repeat-offender step (bantime_increment), absent for a first ban */
  step?: number;
}

/** `rules` (result: RuleInfo[]): like `fail2ban-client status JAIL`. */
export interface RuleInfo {
  name: string;
  enabled: boolean;
  /** where it is defined: `/etc/tallow/postfix.json (block 1)` */
  where: string;
  /** the journal filter, short: groups OR'ed with ` | `, terms AND'ed with ` ` */
  filter: string;
  /** score to ban (`limit` N: N) */
  threshold: number;
  /** seconds; 0: no window */
  findtime: number;
  /** seconds a threshold ban lasts */
  bantime: number;
  /** `all` or the ports */
  ports: string;
  scope: string;
  /** prefix banned per family: 32/128 the address itself */
  prefix: { 4: number; 6: number };
  /** score pool: '' tallow.conf's shared pool, else the rule's own */
  pool: string;
  /** matches since the daemon started */
  matches: number;
  /** bans it made since the daemon started */
  bans: number;
  /** its bans in force now */
  bansActive: number;
  /** highest scores in its pool now */
  top: { address: string; score: number; count: number; banned: boolean }[];
}

/** `metrics`: Prometheus text exposition format. */
export interface MetricsResult {
  text: string;
}

/** `ban` */
export interface BanResult {
  address: string;
  family: Family;
  seconds: number;
  /** the rule it was made in the name of (`--rule`) */
  rule?: string;
  /** where it applies: `all`, or the rule's ports */
  ports?: string;
  /** set when the ban is held but not in the kernel yet (the firewall is failing; it is retried) */
  pending?: string;
}

/** `unban`: wasBanned false means there was no ban (the record, if any, is still forgotten). */
export interface UnbanResult {
  address: string;
  family: Family;
  wasBanned: boolean;
  /** the ports of each ban lifted (`all`, `22`...): one address may be banned in several scopes */
  lifted?: string[];
  /** set when the removal has not reached the kernel yet (retried) */
  pending?: string;
}

/** `unban` with `all` */
export interface UnbanAllResult {
  all: true;
  /** bans lifted */
  lifted: number;
  /** addresses and networks they were for */
  targets: number;
  pending?: string;
}

/** `reload` */
export interface ReloadResult {
  /** the configuration file read, null: built-in defaults */
  config: string | null;
  /** rules added, removed, enabled, disabled, policy changes (as logged) */
  changes: string[];
  /** tallow.conf keys changed that take effect only after a restart */
  restart: string[];
  /** settings made with `tallow set` that the reload dropped (RULE.KEY) */
  dropped: string[];
}

/** `get` and `set` */
export interface SettingResult {
  key: string;
  rule: string;
  setting: 'threshold' | 'bantime' | 'findtime';
  value: number;
  /** set at runtime (`tallow set`), lost at the next reload or restart */
  runtime: boolean;
  /** the rule scores in tallow.conf's shared pool (its threshold and expires) */
  shared: boolean;
  /** `set`: the value before */
  previous?: number;
  /** `set`: what changed in the rule, as logged */
  changes?: string[];
}

/** Longest manual ban: the kernel's ipset timeout limit, ~24.8 days. */
export { MAX_BAN_SECONDS };
/** A request line longer than this is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Connections served at once; more are refused with an error line. */
export const MAX_CLIENTS = 64;
/**
 * A client has this long, from connecting or from its last answer, to complete its next request
 * and read what it was sent; bytes that do not finish a request do not extend it.
 */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Answers waiting for a client that does not read: beyond this, its next request waits. */
export const MAX_QUEUED_REPLY_BYTES = 64 * 1024;
/** Control requests are flat objects; anything nested deeper is refused before it is parsed. */
const MAX_REQUEST_DEPTH = 8;

export const DEFAULT_SOCKET = '/run/tallow/tallow.sock';

const COMMAND_NAMES = 'status, list, metrics, rules, ban, unban, reload, get, set, allow, history';
/** Rule names are shown in logs and label metrics: printable, no spaces. */
const RULE_NAME = /^[!-~]{1,200}$/;

/** Check one decoded request; returns the normalised request or an error message. */
export function validateRequest(value: unknown): { req: ControlRequest } | { error: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: 'a request must be a JSON object like {"cmd":"status"}' };
  }
  const v = value as Record<string, unknown>;
  if (typeof v.cmd !== 'string') return { error: `missing "cmd" (${COMMAND_NAMES})` };
  if (v.cmd === 'history') return validateHistory(v);
  if (v.cmd === 'allow') return validateAllow(v);
  const allowed: Record<string, string[]> = {
    status: ['cmd'],
    list: ['cmd', 'rule'],
    metrics: ['cmd'],
    rules: ['cmd', 'name'],
    ban: ['cmd', 'address', 'seconds', 'rule'],
    unban: ['cmd', 'address', 'all', 'fleet'],
    reload: ['cmd'],
    get: ['cmd', 'key'],
    set: ['cmd', 'key', 'value'],
  };
  const keys = Object.prototype.hasOwnProperty.call(allowed, v.cmd) ? allowed[v.cmd] : undefined;
  if (!keys) return { error: `unknown command ${JSON.stringify(v.cmd).slice(0, 80)} (${COMMAND_NAMES})` };
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) return { error: `${v.cmd}: unexpected field ${JSON.stringify(k).slice(0, 80)}` };
  }
  const ruleName = (field: string): string | { error: string } | undefined => {
    const r = v[field];
    if (r === undefined) return undefined;
    if (typeof r !== 'string' || !RULE_NAME.test(r)) return { error: `${v.cmd}: "${field}" must be a rule name, not ${JSON.stringify(r).slice(0, 80)}` };
    return r;
  };
  if (v.cmd === 'status' || v.cmd === 'metrics' || v.cmd === 'reload') return { req: { cmd: v.cmd } };
  if (v.cmd === 'list' || v.cmd === 'rules') {
    const name = ruleName(v.cmd === 'list' ? 'rule' : 'name');
    if (typeof name === 'object') return name;
    if (name === undefined) return { req: { cmd: v.cmd } };
    return { req: v.cmd === 'list' ? { cmd: 'list', rule: name } : { cmd: 'rules', name } };
  }
  if (v.cmd === 'get' || v.cmd === 'set') {
    const k = splitKey(v.key);
    if ('error' in k) return { error: `${v.cmd}: ${k.error}` };
    const key = `${k.rule}.${k.setting}`;
    if (v.cmd === 'get') return { req: { cmd: 'get', key } };
    const n = parseSettingValue(k.setting, v.value);
    if (typeof n !== 'number') return { error: `set: ${n.error}` };
    return { req: { cmd: 'set', key, value: n } };
  }
  if (v.cmd === 'unban' && v.fleet !== undefined && v.fleet !== true && v.fleet !== false) return { error: 'unban: "fleet" must be true or false' };
  if (v.cmd === 'unban' && v.all !== undefined && v.fleet === true) return { error: 'unban: "fleet" lifts one address or network everywhere, not "all"' };
  if (v.cmd === 'unban' && v.all !== undefined) {
    if (v.all !== true) return { error: `unban: "all" must be true, not ${JSON.stringify(v.all).slice(0, 80)}` };
    if (v.address !== undefined) return { error: 'unban: give "address" or "all", not both' };
    return { req: { cmd: 'unban', all: true } };
  }

  if (typeof v.address !== 'string') return { error: `${v.cmd}: "address" must be a string` };
  const text = v.address;
  const shown = JSON.stringify(text.length > 80 ? text.slice(0, 80) + '...' : text);
  let address: string;
  if (text.includes('/')) {
    // A network (a rule's ban prefix, or by hand) is named by its text; host bits are cleared.
    const t = canonicalTarget(text);
    if (!t) return { error: `${v.cmd}: ${shown} is not a valid network (CIDR, e.g. 2001:db8::/64)` };
    address = t.target;
  } else {
    const a = parseAddress(text);
    if (!a) return { error: `${v.cmd}: ${shown} is not an IPv4 or IPv6 address` };
    address = a.address;
  }
  if (v.cmd === 'unban') return { req: { cmd: 'unban', address, ...(v.fleet === true ? { fleet: true } : {}) } };

  const rule = ruleName('rule');
  if (typeof rule === 'object') return rule;
  const req: ControlRequest = { cmd: 'ban', address, ...(rule !== undefined ? { rule } : {}) };
  if (v.seconds === undefined) return { req };
  const s = v.seconds;
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > MAX_BAN_SECONDS) {
    return { error: `ban: "seconds" must be a whole number from 1 to ${MAX_BAN_SECONDS}, not ${JSON.stringify(s)}` };
  }
  return { req: { ...req, seconds: s } };
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Is something accepting connections on this socket path? */
function probe(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(p);
    const done = (live: boolean): void => {
      s.destroy();
      resolve(live);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

export interface ControlServerOptions {
  /** Called for server-side problems worth a log line (never for ordinary client mistakes). */
  onError?: (message: string) => void;
  /** REQUEST_TIMEOUT_MS unless given (tests). */
  requestTimeoutMs?: number;
}

export class ControlServer {
  private readonly clients = new Set<net.Socket>();
  private readonly refused = new Set<net.Socket>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    private readonly handler: ControlHandler,
    private readonly options: ControlServerOptions,
  ) {}

  /**
   * Listens on `path` (mode 0600, parent created 0700 if missing); replaces a stale socket.
   * Refuses (UnsafeDirError) a directory another user could write: they could swap the socket.
   */
  static async listen(socketPath: string, handler: ControlHandler, options: ControlServerOptions = {}): Promise<ControlServer> {
    checkPrivateDir(path.dirname(socketPath), 'control socket directory');
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(socketPath);
    } catch {
      st = undefined;
    }
    if (st) {
      if (!st.isSocket()) throw new Error(`control socket: ${socketPath} exists and is not a socket; refusing to replace it`);
      if (await probe(socketPath)) {
        throw new Error(`control socket: another tallow is already listening on ${socketPath}`);
      }
      fs.unlinkSync(socketPath); // stale: left by a daemon that died
    }

    // allowHalfOpen: a client may send its last request and end; it still gets the answer.
    const server = net.createServer({ allowHalfOpen: true });
    const cs = new ControlServer(socketPath, server, handler, options);
    server.on('connection', (sock) => cs.accept(sock));
    server.maxConnections = MAX_CLIENTS * 2; // hard stop far above the polite refusal below
    // umask around listen: the socket is created 0600 from the start, never briefly world-open.
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw new Error(`control socket: cannot listen on ${socketPath}: ${errorText(e)}`);
    } finally {
      process.umask(old);
    }
    fs.chmodSync(socketPath, 0o600); // umask is process-wide; make sure regardless
    server.on('error', (e) => options.onError?.(`control socket: ${errorText(e)}`));
    return cs;
  }

  private accept(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    sock.on('error', () => {}); // a client vanishing (EPIPE, ECONNRESET) is its business
    if (this.clients.size >= MAX_CLIENTS) {
      this.refused.add(sock);
      sock.on('close', () => this.refused.delete(sock));
      setTimeout(() => sock.destroy(), 1000).unref(); // a deadline: bytes it sends do not extend it
      sock.end(JSON.stringify({ ok: false, error: 'too many control connections; try again' }) + '\n');
      sock.resume(); // read (and drop) whatever it sends, so its end is seen and the socket freed
      return;
    }
    this.clients.add(sock);
    this.converse(sock);
  }

  /**
   * One client: requests are taken one at a time, in order. Its input is buffered up to about one
   * request (then reading pauses), and the next request waits while earlier answers sit unread
   * (more than MAX_QUEUED_REPLY_BYTES), so a client that sends without reading costs a bounded
   * amount of memory and, at its deadline, its connection.
   */
  private converse(sock: net.Socket): void {
    const timeoutMs = this.options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    let inbuf: Buffer = Buffer.alloc(0);
    let off = 0; // start of the next request in inbuf
    let scanned = 0; // inbuf[off, scanned) holds no newline
    let pumping = false;
    let serving = false;
    let ended = false;
    let done = false;
    let deadline: NodeJS.Timeout | null = null;

    // A deadline, not an idle timer: only an answer sent starts a new one. While the handler
    // works the client is waiting for us, so it is not cut off then (the answer re-arms).
    const arm = (): void => {
      if (deadline) clearTimeout(deadline);
      deadline = setTimeout(() => {
        if (!serving) sock.destroy();
      }, timeoutMs);
      deadline.unref();
    };
    arm();
    sock.on('close', () => {
      this.clients.delete(sock);
      if (deadline) clearTimeout(deadline);
      done = true;
    });

    const reply = (res: ControlResponse): void => {
      if (!sock.destroyed && sock.writable) sock.write(JSON.stringify(res) + '\n');
    };
    const drained = (): Promise<void> =>
      new Promise((resolve) => {
        const go = (): void => {
          sock.off('drain', go);
          sock.off('close', go);
          resolve();
        };
        sock.on('drain', go);
        sock.on('close', go);
      });
    const tooLong = (): void => {
      done = true;
      inbuf = Buffer.alloc(0);
      sock.resume(); // read (and drop) what it still sends, so its end is seen
      reply({ ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes; closing` });
      sock.end();
      setTimeout(() => sock.destroy(), 1000).unref(); // a client that keeps sending is cut off
    };
    const answer = async (line: string): Promise<void> => {
      serving = true;
      const res = await this.serve(line);
      serving = false;
      if (res) {
        reply(res);
        arm(); // a blank line is no request: it earns no more time
      }
    };

    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        while (!done && !sock.destroyed) {
          if (sock.writableLength > MAX_QUEUED_REPLY_BYTES) {
            sock.pause(); // the client is not reading: neither do we
            await drained();
            continue;
          }
          const nl = inbuf.indexOf(0x0a, scanned);
          if (nl < 0) {
            scanned = inbuf.length;
            if (inbuf.length - off > MAX_REQUEST_BYTES) return tooLong();
            if (ended) {
              // A last request without a newline, then end: answer it too, then hang up.
              const rest = inbuf.subarray(off).toString('utf8');
              inbuf = Buffer.alloc(0);
              off = scanned = 0;
              if (rest.trim() !== '') await answer(rest);
              done = true;
              sock.end();
              return;
            }
            sock.resume();
            return;
          }
          const line = inbuf.subarray(off, nl);
          off = scanned = nl + 1;
          if (line.length > MAX_REQUEST_BYTES) return tooLong();
          await answer(line.toString('utf8'));
        }
      } finally {
        pumping = false;
      }
    };

    sock.on('data', (chunk: Buffer) => {
      if (done) return;
      // Keep only what is not yet served; copying is bounded because reading pauses beyond that.
      inbuf = off < inbuf.length ? Buffer.concat([inbuf.subarray(off), chunk]) : chunk;
      scanned -= off;
      if (scanned < 0) scanned = 0;
      off = 0;
      if (inbuf.length > MAX_REQUEST_BYTES) sock.pause();
      void pump();
    });
    sock.on('end', () => {
      ended = true;
      void pump();
    });
  }

  /** One line in, one response out (null: blank line, nothing to say). Never throws. */
  private async serve(line: string): Promise<ControlResponse | null> {
    if (line.trim() === '') return null;
    let value: unknown;
    try {
      value = parseJson(line, MAX_REQUEST_DEPTH);
    } catch (e) {
      return { ok: false, error: `malformed request: ${errorText(e)}` };
    }
    let checked: ReturnType<typeof validateRequest>;
    try {
      checked = validateRequest(value);
    } catch (e) {
      // validateRequest is meant never to throw; if it does, the client still gets an answer.
      this.options.onError?.(`control: validating a request failed: ${errorText(e)}`);
      return { ok: false, error: 'malformed request' };
    }
    if ('error' in checked) return { ok: false, error: checked.error };
    try {
      const res = await this.handler(checked.req);
      if (!res || typeof res !== 'object' || typeof (res as { ok?: unknown }).ok !== 'boolean') {
        this.options.onError?.(`control: handler returned no response for ${checked.req.cmd}`);
        return { ok: false, error: 'internal error: no response' };
      }
      return res;
    } catch (e) {
      return { ok: false, error: errorText(e) };
    }
  }

  /** Stop accepting, drop connections, remove the socket file (only if it is still ours). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.clients, ...this.refused]) c.destroy();
    this.clients.clear();
    this.refused.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // net.Server.close() unlinks the path itself on Linux; nothing else to do unless it lingers.
    try {
      if (fs.lstatSync(this.path).isSocket() && !(await probe(this.path))) fs.unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
