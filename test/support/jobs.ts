/** Fixtures for the job tests (wait, submit): a job row as the cluster returns it, a link over scripted SQL. */
import type { Row } from '../../src/cluster.js';
import { ApplicationNames, ClusterLink } from '../../src/cluster.js';
import { fakeConnector, VirtualClock } from './fakes.js';

/** A log that drops every line. */
export const quiet = { info: () => undefined, warning: () => undefined };

export function job(status: string, fraction = 0.5, extra: Partial<Row> = {}): Row {
  return {
    job_id: '900000000000000001',
    status,
    fraction_completed: fraction,
    error: null,
    created: '2026-11-24 11:40:45.000000',
    started: null,
    finished: status === 'succeeded' || status === 'failed' ? '2026-11-24 11:41:00.000000' : null,
    description: 'BACKUP INTO',
    ...extra,
  };
}

export function linkFor(respond: Parameters<typeof fakeConnector>[0], clock = new VirtualClock()) {
  const connector = fakeConnector(respond);
  const link = new ClusterLink(connector, {} as never, new ApplicationNames('test'), clock, quiet, {
    connectTimeoutMs: 1000,
    random: () => 0.5,
  });
  return { connector, link, clock };
}

export const defaults = (clock: VirtualClock) => ({
  clock,
  log: quiet,
  signal: new AbortController().signal,
  reconnectBudgetMs: 10_000,
});
