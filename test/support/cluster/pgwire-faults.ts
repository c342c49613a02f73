/**
 * Faults the test cluster's wire layer injects per statement: dropped connections, slow or held
 * statements, a lost answer; and waiting that a query cancel interrupts.
 */
import { SqlError } from './protocol-types.js';

function matches(pattern: RegExp, sql: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(sql);
}

export class FaultPlan {
  private loseAnswerIn: number | undefined;
  private dropRules: { pattern: RegExp; times: number; afterMs: number }[] = [];
  private slowRules: { pattern: RegExp; ms: number }[] = [];
  private holdRules: { pattern: RegExp; ms: number }[] = [];

  dropAfterStatements(n: number): void {
    this.loseAnswerIn = Math.max(1, Math.floor(n));
  }
  dropDuring(pattern: RegExp, times: number, afterMs: number): void {
    this.dropRules.push({ pattern, times, afterMs });
  }
  slow(pattern: RegExp, ms: number): void {
    this.slowRules.push({ pattern, ms });
  }
  hold(pattern: RegExp, ms: number): void {
    this.holdRules.push({ pattern, ms });
  }
  holdFor(sql: string): number {
    return this.holdRules.filter((r) => matches(r.pattern, sql)).reduce((sum, r) => sum + r.ms, 0);
  }
  clear(): void {
    this.loseAnswerIn = undefined;
    this.dropRules = [];
    this.slowRules = [];
    this.holdRules = [];
  }
  /** Counts one statement; true when its answer is the one to lose. */
  countStatement(): boolean {
    if (this.loseAnswerIn === undefined) return false;
    this.loseAnswerIn--;
    if (this.loseAnswerIn > 0) return false;
    this.loseAnswerIn = undefined;
    return true;
  }
  /** Milliseconds after which to drop this statement's connection, if a rule fires. */
  takeDropDuring(sql: string): number | undefined {
    const rule = this.dropRules.find((r) => r.times > 0 && matches(r.pattern, sql));
    if (!rule) return undefined;
    rule.times--;
    return rule.afterMs;
  }
  delayFor(sql: string): number {
    return this.slowRules.filter((r) => matches(r.pattern, sql)).reduce((sum, r) => sum + r.ms, 0);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export const canceled = (): SqlError => new SqlError('57014', 'query execution canceled');

/** The work's outcome, or 57014 as soon as the signal aborts (the work is then left to finish alone). */
export function untilCanceled<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined);
      reject(canceled());
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
