// A fleet database in a test's own PostgreSQL cluster (PgCluster): the administrator's SQL of
// tallow.conf(5) FLEET, one role per node with its password in a root-only file. Shared by the
// fleet tests and bench/fleet.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PgCluster } from '../env/postgres';
import { FLEET_SCHEMA_SQL, nodeRoleSql } from '../../src/fleet/schema';

export const FLEET_DB = 'fleet';

export function fleetDatabase(pg: PgCluster): void {
  pg.psql(`CREATE DATABASE ${FLEET_DB} OWNER postgres`);
  pg.psql(`REVOKE ALL ON DATABASE ${FLEET_DB} FROM PUBLIC`);
  for (const s of FLEET_SCHEMA_SQL) pg.psql(s, FLEET_DB);
}

/** Role `tallow_NODE` for node NODE; returns its password file (in `dir`). */
export function nodeRole(pg: PgCluster, dir: string, node: string): string {
  const pw = `pw-${node}-secret`;
  for (const s of nodeRoleSql(`tallow_${node}`, node, pw)) pg.psql(s, FLEET_DB);
  pg.psql(`GRANT CONNECT ON DATABASE ${FLEET_DB} TO tallow_${node}`);
  const f = path.join(dir, `fleet-${node}.secret`);
  fs.writeFileSync(f, pw + '\n', { mode: 0o600 });
  return f;
}

/** tallow.conf lines for a node of this fleet. */
export function fleetLines(pg: PgCluster, node: string, pwFile: string, extra: string[] = []): string[] {
  return ['fleet=postgresql', `history_host=${pg.host}`, `history_dbname=${FLEET_DB}`, `history_user=tallow_${node}`, `fleet_password_file=${pwFile}`, `fleet_node=${node}`, ...extra];
}
