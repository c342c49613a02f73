/**
 * The obvious alternative the action is measured against: submit the same
 * detached BACKUP, then read `[SHOW JOB $1]` every poll interval (5 s, the
 * action's default) until the job ends. Run as a child process by the bench.
 *
 * usage: tsx bench/naive-poller.ts <connection-string> <backup-uri> [intervalMs]
 */
import pg from 'pg';

const [url, uri, intervalArg] = process.argv.slice(2);
if (!url || !uri) {
  console.error('usage: naive-poller <connection-string> <backup-uri> [intervalMs]');
  process.exit(2);
}
const intervalMs = Number(intervalArg ?? 5000);
const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'revert-failed']);

const client = new pg.Client({ connectionString: url, application_name: 'naive-poller' });
client.on('error', () => undefined);
await client.connect();
const submitted = await client.query("BACKUP INTO $1 AS OF SYSTEM TIME '-10s' WITH detached", [uri]);
const jobId = String(submitted.rows[0].job_id);
// Bounded: a poller that never sees the end gives up after an hour.
for (let i = 0; i < 3600_000 / intervalMs; i++) {
  const { rows } = await client.query('SELECT status FROM [SHOW JOB $1]', [jobId]);
  if (TERMINAL.has(String(rows[0]?.status))) break;
  await new Promise((r) => setTimeout(r, intervalMs));
}
await client.end();
