// `tallow status|list|rules|metrics|ban|unban|reload|get|set|version`: clients of the daemon's
// control socket. One request, one response, printed for people (ctl-format.ts; or as JSON with --json;
// `metrics` prints Prometheus' text format). Options are read by the table in commands.ts. Exit
// status (exit.ts, listed in tallow(8) and --help):
//   0  done
//   1  the daemon refused the request (its message is printed)
//   64 bad usage: unknown option, missing or invalid address, time or setting
//   69 the daemon is not running (no socket, or nothing listening on it)
//   76 the daemon did not answer properly (timeout, connection lost, unreadable answer)
//   77 permission denied on the socket (the socket is root-only)
//   78 tallow.conf could not be read, or `tallow reload` refused a configuration with an error
import * as net from 'node:net';
import type { CtlCommand } from './cli';
import { command } from './commands';
import { DEFAULT_CONFIG_FILE, loadConfig } from './config';
import { EX_CONFIG, EX_NOPERM, EX_OK, EX_PROTOCOL, EX_REFUSED, EX_UNAVAILABLE, EX_USAGE } from './exit';
import { parseDuration } from './history/settings';
import { helpText, parseCommand, synopsis, UsageError, type ParsedCommand } from './options';
import type { RuleInfoExtra } from './rule-info';
import { parseSettingValue, splitKey } from './runtime-settings';
import { version } from './version';
import { DEFAULT_SOCKET, MAX_BAN_SECONDS, type ControlResponse } from './control';
import { validateRequest, type ControlRequest } from './control-requests';
import { formatDuration, formatList, formatReload, formatRules, formatSetting, formatStatus } from './ctl-format';
import type {
  BanResult,
  ListItem,
  MetricsResult,
  ReloadResult,
  RuleInfo,
  SettingResult,
  StatusResult,
  UnbanAllResult,
  UnbanResult,
} from './control-results';

export const EXIT_OK = EX_OK;
export const EXIT_REFUSED = EX_REFUSED;
export const EXIT_USAGE = EX_USAGE;
export const EXIT_NOT_RUNNING = EX_UNAVAILABLE;
export const EXIT_PERMISSION = EX_NOPERM;
export const EXIT_PROTOCOL = EX_PROTOCOL;
export const EXIT_CONFIG = EX_CONFIG;

export type Subcommand = CtlCommand;

export interface CtlIO {
  out(text: string): void;
  err(text: string): void;
  /** ms to wait for the daemon's answer */
  timeoutMs?: number;
}

const defaultIO: CtlIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/** `--time`: whole seconds or a duration (`30m`, `2h`, `7d`). */
function banSeconds(v: string): number {
  const n = parseDuration(v);
  if (n === null || n > MAX_BAN_SECONDS) {
    throw new UsageError(`--time must be a duration from 1 s to ${MAX_BAN_SECONDS} s (seconds, or 30m, 2h, 7d, 2w), not ${JSON.stringify(v).slice(0, 40)}`);
  }
  return n;
}

/** The request a command line asks for (UsageError for what the daemon would refuse anyway). */
function requestOf(sub: Subcommand, p: ParsedCommand): ControlRequest {
  const v = p.values;
  const arg = p.positionals;
  switch (sub) {
    case 'ban': {
      const req: ControlRequest = { cmd: 'ban', address: arg[0] };
      if (typeof v.time === 'string') req.seconds = banSeconds(v.time);
      if (typeof v.rule === 'string') req.rule = v.rule;
      return req;
    }
    case 'unban':
      if (v.all === true && arg.length) throw new UsageError(`give an ADDRESS|NETWORK or --all, not both`);
      if (v.all === true) return { cmd: 'unban', all: true };
      if (!arg.length) throw new UsageError('ADDRESS|NETWORK (or --all) is needed');
      return v.fleet === true ? { cmd: 'unban', address: arg[0], fleet: true } : { cmd: 'unban', address: arg[0] };
    case 'rules':
      return arg.length ? { cmd: 'rules', name: arg[0] } : { cmd: 'rules' };
    case 'list':
      return typeof v.rule === 'string' ? { cmd: 'list', rule: v.rule } : { cmd: 'list' };
    case 'get':
    case 'set': {
      const k = splitKey(arg[0]);
      if ('error' in k) throw new UsageError(k.error);
      if (sub === 'get') return { cmd: 'get', key: arg[0] };
      const n = parseSettingValue(k.setting, arg[1]);
      if (typeof n !== 'number') throw new UsageError(n.error);
      return { cmd: 'set', key: arg[0], value: n };
    }
    case 'version':
      return { cmd: 'status' };
    default:
      return { cmd: sub };
  }
}

/** The socket path: --socket, else `socket=` from --config FILE or /etc/tallow.conf, else the default. */
function socketPath(p: ParsedCommand): string {
  if (typeof p.values.socket === 'string') return p.values.socket;
  const config = typeof p.values.config === 'string' ? p.values.config : undefined;
  return loadConfig(config ?? DEFAULT_CONFIG_FILE, config !== undefined).socket || DEFAULT_SOCKET;
}

export class CtlFailure extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/** Send one request, wait for one response line. */
export function request(sock: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let buf = '';
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      fn();
    };
    const timer = setTimeout(
      () => finish(() => reject(new CtlFailure(`no answer from the daemon on ${sock} within ${timeoutMs / 1000} s`, EXIT_PROTOCOL))),
      timeoutMs,
    );
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      finish(() => {
        try {
          const res = JSON.parse(line) as ControlResponse;
          if (typeof res !== 'object' || res === null || typeof res.ok !== 'boolean') throw new Error('no "ok"');
          resolve(res);
        } catch {
          reject(new CtlFailure(`unreadable answer from the daemon on ${sock}`, EXIT_PROTOCOL));
        }
      });
    });
    c.on('end', () => finish(() => reject(new CtlFailure(`the daemon closed the connection on ${sock} without answering`, EXIT_PROTOCOL))));
    c.on('error', (e: NodeJS.ErrnoException) =>
      finish(() => {
        switch (e.code) {
          case 'ENOENT':
          case 'ECONNREFUSED':
          case 'ENOTDIR':
            return reject(new CtlFailure(`the daemon is not running (no socket at ${sock})`, EXIT_NOT_RUNNING));
          case 'EACCES':
          case 'EPERM':
            return reject(new CtlFailure(`permission denied on ${sock} (run as root)`, EXIT_PERMISSION));
          default:
            return reject(new CtlFailure(`cannot talk to the daemon on ${sock}: ${e.code ?? e.message}`, EXIT_PROTOCOL));
        }
      }),
    );
  });
}

/** Testable core of ctlMain: all output through `io`. */
export async function ctlRun(sub: Subcommand, args: string[], io: CtlIO = defaultIO): Promise<number> {
  const spec = command(sub)!;
  let p: ParsedCommand;
  let req: ControlRequest;
  try {
    p = parseCommand(spec, args);
    if (p.help) {
      io.out(helpText(spec));
      return EXIT_OK;
    }
    req = requestOf(sub, p);
  } catch (e) {
    io.err(`tallow ${sub}: ${(e as Error).message}\nusage: ${synopsis(spec)} (see tallow ${sub} --help)\n`);
    return EXIT_USAGE;
  }
  if (sub === 'version') io.out(`tallow ${version()}\n`);
  let sock: string;
  try {
    sock = socketPath(p);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }
  // Same checks as the daemon: a typo is reported without bothering it (and without root).
  const checked = validateRequest(req);
  if ('error' in checked) {
    io.err(`tallow ${checked.error}\n`);
    return EXIT_USAGE;
  }

  let res: ControlResponse;
  try {
    res = await request(sock, checked.req, io.timeoutMs);
  } catch (e) {
    if (sub === 'version') {
      // This program's version is known: the daemon's is only added when it can be asked.
      io.out(`daemon: ${e instanceof CtlFailure && e.code === EXIT_NOT_RUNNING ? 'not running' : `unknown (${(e as Error).message})`}\n`);
      return EXIT_OK;
    }
    io.err(`tallow: ${(e as Error).message}\n`);
    return e instanceof CtlFailure ? e.code : EXIT_PROTOCOL;
  }
  if (!res.ok) {
    io.err(`tallow ${sub}: ${res.error}\n`);
    return typeof res.exitCode === 'number' ? res.exitCode : EXIT_REFUSED;
  }
  try {
    print(sub, p, res.result, io);
  } catch (e) {
    io.err(`tallow: unexpected answer from the daemon: ${(e as Error).message}\n`);
    return EXIT_PROTOCOL;
  }
  return EXIT_OK;
}

function print(sub: Subcommand, p: ParsedCommand, result: unknown, io: CtlIO): void {
  const json = p.values.json === true;
  switch (sub) {
    case 'status':
      io.out(json ? JSON.stringify(result, null, 2) + '\n' : formatStatus(result as StatusResult));
      break;
    case 'version': {
      const s = result as StatusResult;
      io.out(`daemon: tallow ${s.version} (pid ${s.pid}, up ${formatDuration(s.uptime)})\n`);
      break;
    }
    case 'metrics': {
      const m = result as MetricsResult;
      if (typeof m?.text !== 'string') throw new Error('metrics result has no text');
      io.out(m.text);
      break;
    }
    case 'list': {
      const items = result as ListItem[];
      if (!Array.isArray(items)) throw new Error('list result is not an array');
      const rule = p.values.rule;
      io.out(json ? JSON.stringify(items, null, 2) + '\n' : items.length === 0 && typeof rule === 'string' ? `no bans of rule ${rule}\n` : formatList(items));
      break;
    }
    case 'rules': {
      const rules = result as (RuleInfo & RuleInfoExtra)[];
      if (!Array.isArray(rules)) throw new Error('rules result is not an array');
      io.out(json ? JSON.stringify(rules, null, 2) + '\n' : formatRules(rules));
      break;
    }
    case 'ban': {
      const b = result as BanResult;
      const where = b.rule ? ` on ports ${b.ports} (rule ${b.rule})` : b.ports && b.ports !== 'all' ? ` on ports ${b.ports}` : '';
      io.out(`banned ${b.address} for ${b.seconds} s (${formatDuration(b.seconds)})${where}\n`);
      if (b.pending) io.err(`tallow ban: note: ${b.pending}\n`);
      break;
    }
    case 'unban': {
      if ((result as UnbanAllResult).all === true) {
        const a = result as UnbanAllResult;
        io.out(a.lifted === 0 ? 'no bans to lift\n' : `unbanned everything: ${a.lifted} ban${a.lifted === 1 ? '' : 's'} of ${a.targets} address${a.targets === 1 ? '' : 'es'} and networks; their records are cleared\n`);
        if (a.pending) io.err(`tallow unban: note: ${a.pending}\n`);
        break;
      }
      const u = result as UnbanResult;
      // Several bans (one per scope: sshd's on 22, postfix's on 25) are lifted at once: say which.
      const which = u.lifted && (u.lifted.length > 1 || (u.lifted.length === 1 && u.lifted[0] !== 'all')) ? ` (${u.lifted.map((x) => (x === 'all' ? 'all ports' : `ports ${x}`)).join('; ')})` : '';
      io.out(u.wasBanned ? `unbanned ${u.address}${which}; its record is cleared\n` : `${u.address} was not banned; its record (if any) is cleared\n`);
      if ((u as { fleet?: boolean }).fleet) io.out(`asked every node of the fleet to lift ${u.address}\n`);
      if (u.pending) io.err(`tallow unban: note: ${u.pending}\n`);
      break;
    }
    case 'reload': {
      const r = result as ReloadResult;
      if (!Array.isArray(r?.changes)) throw new Error('reload result has no changes');
      io.out(formatReload(r));
      break;
    }
    case 'get':
    case 'set': {
      const r = result as SettingResult;
      if (typeof r?.value !== 'number') throw new Error(`${sub} result has no value`);
      io.out(formatSetting(r));
      break;
    }
  }
}

export function ctlMain(subcommand: Subcommand, args: string[]): Promise<number> {
  return ctlRun(subcommand, args, defaultIO);
}
