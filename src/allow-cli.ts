// `tallow allow add|remove NETWORK`, `tallow allow list [--json]`: the running allowlist, changed
// at runtime and kept in the daemon's drop-in (allow-control.ts). One self-contained subcommand:
// its options, its request, its output; exit statuses as the other clients' (ctl.ts).
import { DEFAULT_CONFIG_FILE, loadConfig } from './config';
import { DEFAULT_SOCKET } from './control';
import { validateRequest, type ControlRequest } from './control-requests';
import type { AllowChangeResult, AllowListResult } from './allow-control';
import { CtlFailure, EXIT_CONFIG, EXIT_OK, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_USAGE, request, type CtlIO } from './ctl';
import { command } from './commands';
import { helpText, parseCommand, synopsis, UsageError } from './options';

export const ALLOW_USAGE = synopsis(command('allow')!);

const defaultIO: CtlIO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

interface Parsed {
  op: 'add' | 'remove' | 'list';
  entry?: string;
  json: boolean;
  socket?: string;
  config?: string;
}

function parse(args: string[]): Parsed {
  const v = parseCommand(command('allow')!, args);
  const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
  const json = v.values.json === true;
  const socket = str(v.values.socket);
  const config = str(v.values.config);
  const [op, entry] = v.positionals;
  if (op !== 'add' && op !== 'remove' && op !== 'list') throw new UsageError(`unknown action ${JSON.stringify(op)} (add, remove, list)`);
  if (op === 'list') {
    if (entry !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(entry)}`);
    return { op, json, socket, config };
  }
  if (json) throw new UsageError('--json is for allow list');
  if (entry === undefined) throw new UsageError('an ADDRESS or NETWORK is needed');
  return { op, entry, json, socket, config };
}

export async function allowRun(args: string[], io: CtlIO = defaultIO): Promise<number> {
  let p: Parsed;
  try {
    if (parseCommand(command('allow')!, args).help) {
      io.out(helpText(command('allow')!));
      return EXIT_OK;
    }
    p = parse(args);
  } catch (e) {
    io.err(`tallow allow: ${(e as Error).message}\nusage: ${ALLOW_USAGE}\n`);
    return EXIT_USAGE;
  }
  const req = (p.op === 'list' ? { cmd: 'allow', op: 'list' } : { cmd: 'allow', op: p.op, entry: p.entry }) as ControlRequest;
  // The daemon's own check first: a typo is reported without bothering it (and without root).
  const checked = validateRequest(req);
  if ('error' in checked) {
    io.err(`tallow ${checked.error}\n`);
    return EXIT_USAGE;
  }
  let sock: string;
  try {
    sock = p.socket ?? (loadConfig(p.config ?? DEFAULT_CONFIG_FILE, p.config !== undefined).socket || DEFAULT_SOCKET);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }
  let res;
  try {
    res = await request(sock, checked.req, io.timeoutMs);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return e instanceof CtlFailure ? e.code : EXIT_PROTOCOL;
  }
  if (!res.ok) {
    io.err(`tallow allow ${p.op}: ${res.error}\n`);
    return typeof res.exitCode === 'number' ? res.exitCode : EXIT_REFUSED;
  }
  if (p.op === 'list') {
    const l = res.result as AllowListResult;
    if (!Array.isArray(l?.entries) || !Array.isArray(l.added)) {
      io.err('tallow: unexpected answer from the daemon: allow list has no entries\n');
      return EXIT_PROTOCOL;
    }
    if (p.json) io.out(JSON.stringify(l, null, 2) + '\n');
    else for (const e of l.entries) io.out(l.added.includes(e) ? `${e}\t(tallow allow add, ${l.file})\n` : `${e}\n`);
    return EXIT_OK;
  }
  const c = res.result as AllowChangeResult;
  if (p.op === 'add') io.out(c.changed ? `allowed ${c.entry} (kept in ${c.file})\n` : `${c.entry} was already allowed by tallow allow add\n`);
  else io.out(c.changed ? `removed ${c.entry} from the allowlist (${c.file})\n` : `${c.entry} was not added with tallow allow add; nothing changed\n`);
  for (const l of c.lifted ?? []) io.out(`ban lifted: ${l}\n`);
  return EXIT_OK;
}

export function allowMain(args: string[]): Promise<number> {
  return allowRun(args, defaultIO);
}
