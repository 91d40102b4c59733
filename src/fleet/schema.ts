// The shared table of the fleet, made once by the database's administrator (tallow never creates
// it: a node's role gets the least it needs). The same statements are in tallow.conf(5), FLEET;
// a unit test keeps the two the same.
//
// Security: every node has a role of its own, mapped to its node name in `nodes`; row-level
// security lets a role insert rows with its own node name only, and delete only rows past their
// expiry (maintenance). A compromised node can still publish bans under its own name: quorum
// (fleet_quorum) is the answer to that, and its name is in every row it writes.
//
// The catch-up query (`WHERE id > last_seen ORDER BY id LIMIT n`) runs on the primary key;
// maintenance (`expiry < now`) on the expiry index. A statement trigger wakes the listeners
// (NOTIFY is only a wake-up: the table is the truth).

/** The schema, table, trigger, policies and group role: run once as the administrator. */
export const FLEET_SCHEMA_SQL: readonly string[] = [
  'CREATE ROLE tallow_fleet NOLOGIN',
  'CREATE SCHEMA tallow_fleet',
  `CREATE TABLE tallow_fleet.nodes (
  role name PRIMARY KEY,
  node text NOT NULL UNIQUE
)`,
  `CREATE TABLE tallow_fleet.events (
  id bigserial PRIMARY KEY,
  node text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('ban', 'unban')),
  address text NOT NULL,
  family smallint NOT NULL CHECK (family IN (4, 6)),
  rule text,
  reason text NOT NULL,
  seconds integer NOT NULL,
  since bigint NOT NULL,
  expiry bigint NOT NULL,
  created timestamptz NOT NULL DEFAULT now()
)`,
  'CREATE INDEX events_expiry ON tallow_fleet.events (expiry)',
  `CREATE FUNCTION tallow_fleet.wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tallow_fleet', '');
  RETURN NULL;
END $$`,
  'CREATE TRIGGER wake AFTER INSERT ON tallow_fleet.events FOR EACH STATEMENT EXECUTE FUNCTION tallow_fleet.wake()',
  'ALTER TABLE tallow_fleet.events ENABLE ROW LEVEL SECURITY',
  'ALTER TABLE tallow_fleet.events FORCE ROW LEVEL SECURITY',
  'CREATE POLICY read_all ON tallow_fleet.events FOR SELECT TO tallow_fleet USING (true)',
  `CREATE POLICY insert_own ON tallow_fleet.events FOR INSERT TO tallow_fleet
  WITH CHECK (node = (SELECT n.node FROM tallow_fleet.nodes n WHERE n.role = current_user))`,
  `CREATE POLICY delete_expired ON tallow_fleet.events FOR DELETE TO tallow_fleet
  USING (expiry < (extract(epoch FROM now()) * 1000)::bigint)`,
  'GRANT USAGE ON SCHEMA tallow_fleet TO tallow_fleet',
  'GRANT SELECT ON tallow_fleet.nodes TO tallow_fleet',
  'GRANT SELECT, INSERT, DELETE ON tallow_fleet.events TO tallow_fleet',
  'GRANT USAGE ON SEQUENCE tallow_fleet.events_id_seq TO tallow_fleet',
];

/** One node's role (run once per node; the password goes into its fleet_password_file). */
export function nodeRoleSql(role: string, node: string, password: string): string[] {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const id = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return [
    `CREATE ROLE ${id(role)} LOGIN PASSWORD ${lit(password)} IN ROLE tallow_fleet`,
    `INSERT INTO tallow_fleet.nodes (role, node) VALUES (${lit(role)}, ${lit(node)})`,
  ];
}

/** NOTIFY channel the trigger wakes. */
export const CHANNEL = 'tallow_fleet';
/** Rows read per catch-up query. */
export const CATCH_UP_BATCH = 5000;
/** Rows deleted per maintenance statement: a short transaction. */
export const PRUNE_BATCH = 1000;
/** Advisory lock key: one node at a time does the maintenance. */
export const MAINTENANCE_LOCK = "hashtext('tallow-fleet-maintenance')";

export const FLEET_SQL = {
  check: 'SELECT 1 FROM tallow_fleet.events LIMIT 0',
  /** New rows after last_seen; at start, live rows only (expired ones change nothing). */
  catchUp: `SELECT id, node, kind, address, family, rule, reason, seconds, since, expiry FROM tallow_fleet.events
  WHERE id > $1 AND expiry > $2 ORDER BY id LIMIT ${CATCH_UP_BATCH}`,
  insert: `INSERT INTO tallow_fleet.events (node, kind, address, family, rule, reason, seconds, since, expiry)
  SELECT $1, * FROM unnest($2::text[], $3::text[], $4::smallint[], $5::text[], $6::text[], $7::int[], $8::bigint[], $9::bigint[])`,
  prune: `DELETE FROM tallow_fleet.events WHERE id IN (SELECT id FROM tallow_fleet.events WHERE expiry < $1 ORDER BY expiry LIMIT ${PRUNE_BATCH})`,
};
