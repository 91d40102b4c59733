// The history's schema, version by version. A store runs, in one transaction at open, every
// migration above the version it finds, so a file or database written by an older tallow is
// brought up to date and one written by a newer tallow is refused (not silently misread).
// Version 1: bans (with their end) and matches. Version 2: the repeat-offender step of each ban,
// and the count of a row that sums up matches past the hourly cap. Version 3 (rules per service):
// the rule of each ban and match, and the scope (ports) of each ban. Version 4: the logins that
// notify rules report. Version 5: bans_reason_since dropped (its one reader, the repeat-offender
// view's `reason = 'threshold' AND since >= ?`, is served by bans_since: nearly every ban is a
// threshold ban; the index was a fourth B-tree insert per ban row, ~20% of a flood's store CPU).

export type Dialect = 'sqlite' | 'postgresql';

/** DDL per version; `ID` and `REAL` are spelled per dialect below. */
const MIGRATIONS: string[][] = [
  // 1
  [
    `CREATE TABLE bans (
      id ID,
      address TEXT NOT NULL,
      family INTEGER NOT NULL,
      since BIGINT NOT NULL,
      expiry BIGINT NOT NULL,
      origin TEXT NOT NULL,
      reason TEXT NOT NULL,
      pattern TEXT,
      score REAL NOT NULL,
      count INTEGER NOT NULL,
      ended BIGINT,
      end_reason TEXT,
      UNIQUE (address, since))`,
    'CREATE INDEX bans_since ON bans (since)',
    `CREATE TABLE matches (
      id ID,
      address TEXT NOT NULL,
      at BIGINT NOT NULL,
      pattern TEXT NOT NULL)`,
    'CREATE INDEX matches_address_at ON matches (address, at)',
    'CREATE TABLE progress (run TEXT PRIMARY KEY, seq BIGINT NOT NULL, at BIGINT NOT NULL)',
  ],
  // 2
  [
    'ALTER TABLE bans ADD COLUMN step INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE matches ADD COLUMN n INTEGER NOT NULL DEFAULT 1',
    'CREATE INDEX bans_reason_since ON bans (reason, since)',
  ],
  // 3
  [
    'ALTER TABLE bans ADD COLUMN rule TEXT',
    "ALTER TABLE bans ADD COLUMN scope TEXT NOT NULL DEFAULT ''",
    'ALTER TABLE matches ADD COLUMN rule TEXT',
  ],
  // 4 (notify rules, issue 16.4): the logins they report, as `tallow report` reads them
  [
    `CREATE TABLE logins (
      id ID,
      at BIGINT NOT NULL,
      address TEXT NOT NULL,
      username TEXT NOT NULL,
      method TEXT NOT NULL,
      fingerprint TEXT,
      rule TEXT NOT NULL)`,
    'CREATE INDEX logins_at ON logins (at)',
  ],
  // 5
  ['DROP INDEX IF EXISTS bans_reason_since'],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

function spell(sql: string, d: Dialect): string {
  return d === 'sqlite'
    ? sql.replace(/\bID\b/g, 'INTEGER PRIMARY KEY').replace(/\bBIGINT\b/g, 'INTEGER')
    : sql.replace(/\bID\b/g, 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY').replace(/\bREAL\b/g, 'DOUBLE PRECISION');
}

/** The statements that bring a schema at version `from` to SCHEMA_VERSION (`from` 0: none yet). */
export function migrations(from: number, d: Dialect): { version: number; statements: string[] }[] {
  if (from > SCHEMA_VERSION) {
    throw new Error(`the history was written by a newer tallow (schema version ${from}, this one knows up to ${SCHEMA_VERSION})`);
  }
  const out: { version: number; statements: string[] }[] = [];
  for (let v = from + 1; v <= SCHEMA_VERSION; v++) out.push({ version: v, statements: MIGRATIONS[v - 1].map((s) => spell(s, d)) });
  return out;
}

/** Version 1 exactly as the first release wrote it (test fixtures: migration from an older file). */
export function schemaAt(version: number, d: Dialect): string[] {
  return MIGRATIONS.slice(0, version).flat().map((s) => spell(s, d));
}
