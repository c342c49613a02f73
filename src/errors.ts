/**
 * The error classes (a rejected input, an abort, the main step's failure) and
 * the way any thrown value becomes a line of text for a log, the step's
 * failure or the summary.
 */
import type { RunReport } from './report.js';
import type { SecretRegistry } from './secrets.js';

/** The error every rejected input throws: it names the input and says what to write. */
export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(`Input \`${input}\`: ${message}`);
    this.name = 'InputError';
  }
}

/** A value quoted in an error message: on one line, at most 60 characters. */
export function clip(s: string): string {
  const oneLine = s.replace(/[\r\n]+/g, '⏎');
  return oneLine.length > 60 ? `${oneLine.slice(0, 57)}…` : oneLine;
}

/** The run was aborted (the runner sent a signal): whatever was under way stops. */
export class AbortedError extends Error {
  constructor() {
    super('aborted');
    this.name = 'AbortedError';
  }
}

/** The main step fails with this message, which is already the sentence a user reads, and this outcome. */
export class StepFailure extends Error {
  constructor(
    message: string,
    readonly outcome: RunReport['outcome'] = 'error',
  ) {
    super(message);
  }
}

/**
 * A thrown value as one line of text: the message plus pg's detail, hint and
 * SQLSTATE, never a stack. Scrubbed when given the run's secrets; callers that
 * scrub whatever they print themselves may leave them out.
 */
export function errorLine(err: unknown, secrets?: Pick<SecretRegistry, 'scrub'>): string {
  const line = unscrubbedLine(err);
  return secrets ? secrets.scrub(line) : line;
}

/**
 * The message alone, without the server's detail, hint and SQLSTATE: for
 * matching an error by its text, and for the lines that have always shown
 * only the message (their wording is part of the action's behaviour).
 */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function unscrubbedLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { detail?: string; hint?: string; code?: string };
  const parts = [e.message || e.name];
  if (typeof e.detail === 'string' && e.detail) parts.push(`(${e.detail})`);
  if (typeof e.hint === 'string' && e.hint) parts.push(`hint: ${e.hint}`);
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) parts.push(`[SQLSTATE ${e.code}]`);
  return parts.join(' ');
}
