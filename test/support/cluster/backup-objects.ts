/**
 * SHOW BACKUP's schema and table rows. show-backup.ts answers `SHOW BACKUP FROM … IN …` with one row per
 * database and layer; a real cluster also lists, under each database, its `public` schema
 * (object_type `schema`) and each table (object_type `table`, parent_schema_name `public`, with
 * size_bytes and rows) (pkg/backup/show.go backupShowerDefault; docs show-backup.md "Response").
 * This module adds those rows from the catalog each backup recorded in its manifest; backups with no
 * recorded catalog (seeded collections) keep the database rows only.
 */
import type { Session } from './engine-state.js';
import type { EngineInternals } from './internals.js';
import type { QueryResult } from './protocol-types.js';
import { formatTs, resolveValue, VALUE } from './sqltext.js';

export async function showBackupWithObjects(
  e: EngineInternals,
  s: Session,
  sql: string,
  params: readonly (string | null)[],
): Promise<QueryResult | undefined> {
  const m = new RegExp(
    `^SHOW\\s+BACKUP\\s+FROM\\s+(LATEST|${VALUE})\\s+IN\\s+(${VALUE})(?:\\s+WITH\\s+(.+))?$`,
    'i',
  ).exec(sql);
  if (!m) return undefined;
  const uri = resolveValue(m[2]!, params) ?? '';
  const base = await e.showBackup(s, m[1]!, uri, m[3], params);
  const store = e.storage(s, uri);
  const subdir = /^LATEST$/i.test(m[1]!) ? await store.latest() : resolveValue(m[1]!, params);
  const layers = await store.chain('/' + (subdir ?? '').replace(/^\/+/, ''));
  const width = base.fields!.length;
  const rows: (string | null)[][] = [];
  for (const row of base.rows) {
    const layer = layers.find(
      (l) =>
        formatTs(BigInt(l.manifest.endMicros), e.profile.tzTimes) === row[6] && l.manifest.kind === row[4],
    );
    const db = layer?.manifest.catalog?.find((d) => d.name === row[2]);
    if (!layer || !db) {
      rows.push(row);
      continue;
    }
    // Sizes and row counts belong to the tables; database and schema rows carry NULL (show-backup.md).
    rows.push(row.map((cell, i) => (i === 7 || i === 8 || i === 10 ? null : cell)));
    const sized = layer.manifest.files.reduce((n, f) => n + f.size, 0);
    const each = db.tables.length > 0 ? Math.floor(sized / db.tables.length) : 0;
    const fill = (cells: (string | null)[]) => [...cells, ...Array<null>(width - cells.length).fill(null)];
    rows.push(fill([db.name, null, 'public', 'schema', row[4]!, row[5]!, row[6]!, null, null, row[9]!]));
    for (const t of db.tables) {
      const tableRows = layer.manifest.kind === 'full' ? String(t.rows) : '0';
      rows.push(
        fill([
          db.name,
          t.schema,
          t.name,
          'table',
          row[4]!,
          row[5]!,
          row[6]!,
          String(each),
          tableRows,
          row[9]!,
          // WITH check_files: the bytes of the table's files in storage.
          ...(width > 10 ? [String(each)] : []),
        ]),
      );
    }
  }
  return { ...base, rows, tag: `SELECT ${rows.length}` };
}
