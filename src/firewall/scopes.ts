// The scopes a backend holds sets for (src/scope.ts says what a scope is): always tallow's own
// (ALL_PORTS) first, each once, each checked before its id and ports reach a set name, a command
// line or a script. Ids and port lists come from rules.ts, but this is the last check.
import type { Family } from '../address';
import { ALL_PORTS, MAX_SET_NAME, setName, type Scope } from '../scope';
import type { Logger } from './backend';
import { validTarget } from './validate';

const ID = /^[a-z0-9_]*$/i;
const PORT = /^(\d{1,5})(?:-(\d{1,5}))?$/;

function validPorts(ports: unknown): boolean {
  if (ports === null) return true;
  if (!Array.isArray(ports) || ports.length === 0 || ports.length > 15) return false;
  return ports.every((p) => {
    const m = typeof p === 'string' ? PORT.exec(p) : null;
    const ok = (n: number) => n >= 1 && n <= 65535;
    return !!m && ok(Number(m[1])) && (m[2] === undefined || (ok(Number(m[2])) && Number(m[2]) > Number(m[1])));
  });
}

/** Throws Error naming the scope when it could not be written into a set name or rule safely. */
export function checkScope(s: Scope): Scope {
  const bad = (why: string) => new Error(`firewall scope ${JSON.stringify(s?.id)}: ${why}`);
  if (!s || typeof s.id !== 'string' || !ID.test(s.id) || setName(6, s.id).length > MAX_SET_NAME) throw bad('not a valid set name part');
  if (!validPorts(s.ports)) throw bad(`ports ${JSON.stringify(s.ports)}: expected null or 1-15 of "N" / "N-M"`);
  if (!Array.isArray(s.protocols) || s.protocols.length === 0 || !s.protocols.every((p) => p === 'tcp' || p === 'udp')) throw bad('protocols: expected tcp and/or udp');
  if (typeof s.net !== 'boolean') throw bad('net: expected a boolean');
  if (s.id === '' && (s.ports !== null || s.net)) throw bad("the scope '' is tallow's own: every port, single addresses");
  return s;
}

/** ALL_PORTS first, then `scopes` in order, each id once (the first wins), each checked. */
export function scopeList(...lists: (Iterable<Scope> | undefined)[]): Scope[] {
  const out = new Map<string, Scope>([['', ALL_PORTS]]);
  for (const list of lists) for (const s of list ?? []) if (!out.has(checkScope(s).id)) out.set(s.id, s);
  return [...out.values()];
}

/** The scopes by id, for the entries' `scope` fields. */
export function scopeMap(scopes: readonly Scope[]): Map<string, Scope> {
  return new Map(scopes.map((s) => [s.id, s]));
}

/** The scope an entry names ('' when absent). */
export function entryScope(e: { scope?: string }): string {
  return e.scope ?? '';
}

/** One address (or network) in one scope, checked. */
export type Target = { address: string; family: Family; scope: string };

/**
 * An entry as the queue takes it: `ok` when its scope is held and its set can hold the address;
 * `unknown scope` when it would fit a scope that is not held; else `invalid`.
 */
export function classify(
  e: { address: string; family: Family; scope?: string } | undefined,
  scopes: Map<string, Scope>,
): { kind: 'ok' | 'unknown scope'; target: Target } | { kind: 'invalid' } {
  const id = e ? (e.scope ?? '') : null;
  if (!e || typeof id !== 'string') return { kind: 'invalid' };
  const scope = scopes.get(id);
  if (scope) return validTarget(e.address, e.family, scope.net) ? { kind: 'ok', target: { address: e.address, family: e.family, scope: id } } : { kind: 'invalid' };
  return validTarget(e.address, e.family, true) ? { kind: 'unknown scope', target: { address: e.address, family: e.family, scope: id } } : { kind: 'invalid' };
}

/**
 * nocreate=1: the scopes whose sets all exist (the administrator made them). tallow's own scope
 * stays whatever happens (its bans fail until its sets exist, as they always did); another
 * scope without its sets is left out and named, so its bans are refused (dropped, not retried
 * with everyone else's) until the sets exist and the configuration is reloaded.
 */
export function usableScopes(scopes: readonly Scope[], fams: Family[], exists: (set: string) => boolean, log: Logger, what: string): Scope[] {
  const out: Scope[] = [];
  for (const s of scopes) {
    const missing = fams.map((f) => setName(f, s)).filter((n) => !exists(n));
    if (s.id === '') for (const set of missing) log.warn(`nocreate=1 but the ${what} is missing: bans will fail until it exists`, { set });
    else if (missing.length) log.warn(`nocreate=1 and a scope's ${what} is missing: its bans are refused until it exists and tallow is reloaded`, { scope: s.id, sets: missing.join(',') });
    if (s.id === '' || !missing.length) out.push(s);
  }
  return out;
}
