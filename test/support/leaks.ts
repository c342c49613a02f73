/**
 * The leak probe: every form a secret can take (raw, URL-encoded, form-encoded, Go's
 * QueryEscape, Markdown-escaped) and where the e2e harness looks for them: everything the
 * runner would publish, and the SQL text the test cluster received.
 */
import type { ActionRunOptions, ActionRunResult } from './action-runner.js';
import { workflowCommands } from './action-runner.js';
import type { TestCluster } from './cluster/index.js';

const SECRET_INPUTS = [
  'connection-string',
  'grant-connection-string',
  'verify-connection-string',
  'aws-secret-access-key',
  'aws-session-token',
  'encryption-passphrase',
  'kms-uri',
  'client-key',
];
const SECRET_ENV = ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'];

/** Every secret a run was given, including the password inside each connection string. */
export function secretsOf(opts: ActionRunOptions, extra: string[] = []): string[] {
  const values: string[] = [...extra];
  for (const name of SECRET_INPUTS) {
    const v = opts.inputs[name];
    if (!v) continue;
    values.push(v);
    if (name.endsWith('connection-string')) {
      try {
        // As the driver reads it: the userinfo up to the last `@`, and pg's password-like parameters.
        const url = new URL(v);
        const pw = decodeURIComponent(url.password);
        if (pw) values.push(pw);
        for (const [key, value] of url.searchParams)
          if (/pass|secret|token|key/i.test(key)) values.push(value);
      } catch {
        // a malformed connection string is itself the secret
      }
    }
    if (name === 'client-key')
      values.push(...v.split('\n').filter((l) => l.trim().length > 8 && !l.startsWith('-----')));
  }
  for (const name of SECRET_ENV) if (opts.env?.[name]) values.push(opts.env[name]);
  return [...new Set(values.filter((v) => v.length >= 4))];
}

/** Raw, encodeURIComponent, form-encoded (`+` or `%20` for space), Go's url.QueryEscape and Markdown-escaped forms. */
export function secretForms(value: string): string[] {
  const form = new URLSearchParams({ x: value }).toString().slice(2);
  // Go's QueryEscape keeps only letters, digits and -_.~ ; space is +.
  const go = [...Buffer.from(value, 'utf8')]
    .map((b) => {
      const c = String.fromCharCode(b);
      if (/[A-Za-z0-9\-_.~]/.test(c)) return c;
      return c === ' ' ? '+' : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
  // As the summary prints a text from outside: Markdown-escaped (src/report.ts escapeMarkdown).
  const markdown = value
    .replace(/[\\`*_[\]#|~]/g, '\\$&')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');
  return [...new Set([value, encodeURIComponent(value), form, form.replace(/\+/g, '%20'), go, markdown])];
}

export interface LeakReport {
  where: string;
  form: string;
}

/**
 * Where any secret form appears in what the runner would publish (`::add-mask::` lines aside),
 * and, once the action has registered masks at all, every secret it was given that the runner
 * was not told to mask: text the action does not control (a cluster's error, pg's own messages)
 * is only masked by the runner.
 */
export function findLeaks(
  result: ActionRunResult,
  secrets: string[],
  given: string[] = secrets,
): LeakReport[] {
  const masks = new Set(workflowCommands(result.stdout, 'add-mask'));
  const unmasked =
    masks.size === 0
      ? []
      : given
          .filter((s) => !s.includes('\n') && !masks.has(s))
          .map((s) => ({ where: '::add-mask:: (never registered)', form: redactForReport(s) }));
  return [...unmasked, ...findPublished(result, secrets)];
}

function findPublished(result: ActionRunResult, secrets: string[]): LeakReport[] {
  const published = {
    stdout: result.stdout
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n'),
    stderr: result.stderr,
    GITHUB_OUTPUT: result.outputFile,
    GITHUB_STEP_SUMMARY: result.summary,
    GITHUB_STATE: result.stateFile,
  };
  const leaks: LeakReport[] = [];
  for (const secret of secrets) {
    for (const form of secretForms(secret)) {
      for (const [where, text] of Object.entries(published)) {
        if (text.includes(form)) leaks.push({ where, form: redactForReport(form) });
      }
    }
  }
  return leaks;
}

/** Secrets in SQL text the cluster received (they may only travel as bind parameters). */
export function findSqlLeaks(cluster: TestCluster, secrets: string[], sinceIndex = 0): LeakReport[] {
  const leaks: LeakReport[] = [];
  for (const entry of cluster.statementLog.slice(sinceIndex)) {
    for (const secret of secrets) {
      for (const form of secretForms(secret)) {
        if (entry.sql.includes(form))
          leaks.push({ where: `SQL text: ${entry.sql.slice(0, 80)}`, form: redactForReport(form) });
      }
    }
  }
  return leaks;
}

function redactForReport(form: string): string {
  return `${form.slice(0, 3)}…(${form.length} chars)`;
}
