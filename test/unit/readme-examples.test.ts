/**
 * The README's workflow examples, read as a user would copy them: every step that uses this
 * action must pass the action's own input validation, fit its timeout inside the credentials
 * it is given, and hand its outputs to scripts through `env:` only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readConfig } from '../../src/inputs.js';
import { parseDuration } from '../../src/time.js';
import { SecretRegistry } from '../../src/secrets.js';
import { REPO_ROOT } from '../../scripts/docs.js';

interface Step {
  id?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Job {
  steps?: Step[];
  outputs?: Record<string, string>;
  needs?: string | string[];
}
interface Workflow {
  steps?: Step[];
  jobs?: Record<string, Job>;
}

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const action = parse(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8')) as {
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
};
const examples = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as Workflow);
const isThisAction = (s: Step): boolean => /crdb-backup-action/.test(s.uses ?? '') || s.uses === './';

/** A value a user's secret or variable would hold, by the input it feeds. */
function standIn(input: string): string {
  if (/connection-string$/.test(input))
    return 'postgresql://ci_backup:s3cret@db.example.com:26257/defaultdb?sslmode=verify-full';
  if (input === 'ca-cert') return '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  return 'stand-in';
}

/** Every job of an example as [name, job]; a bare `steps:` list is one unnamed job. */
function jobsOf(w: Workflow): [string, Job][] {
  if (w.jobs) return Object.entries(w.jobs);
  return w.steps ? [['(steps)', { steps: w.steps }]] : [];
}

describe('README workflow examples', () => {
  it('has examples that use the action', () => {
    const uses = examples.flatMap((w) => jobsOf(w).flatMap(([, j]) => (j.steps ?? []).filter(isThisAction)));
    expect(uses.length).toBeGreaterThanOrEqual(4);
  });

  examples.forEach((workflow, n) => {
    for (const [jobName, job] of jobsOf(workflow)) {
      const steps = job.steps ?? [];
      for (const step of steps.filter(isThisAction)) {
        it(`example ${n + 1}, job ${jobName}: the action accepts its inputs as written`, () => {
          const given = Object.fromEntries(
            Object.entries(step.with ?? {}).map(([k, v]) => {
              const text = String(v);
              return [k, /\$\{\{/.test(text) ? standIn(k) : text];
            }),
          );
          for (const name of Object.keys(given)) expect(Object.keys(action.inputs)).toContain(name);
          const aws = steps.find((s) => /configure-aws-credentials/.test(s.uses ?? ''));
          const env: Record<string, string> = aws
            ? {
                AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE000000001',
                AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
                AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEXAMPLE',
                AWS_REGION: String(aws.with?.['aws-region'] ?? ''),
              }
            : {};
          const secrets = new SecretRegistry(() => undefined);
          expect(() => readConfig((k) => given[k] ?? '', env, secrets)).not.toThrow();
          // The credentials must outlast the backup: its timeout sits inside role-duration-seconds
          // (a dry run takes no backup, so it copies the nightly step's timeout unchanged).
          const roleSeconds = Number(aws?.with?.['role-duration-seconds'] ?? 3600);
          if (aws && given['dry-run'] !== 'true') {
            expect(given.timeout, 'a timeout that bounds the step inside the credentials').toBeDefined();
            expect(parseDuration(given.timeout!)).toBeLessThan(roleSeconds * 1000);
          }
        });
      }
      it(`example ${n + 1}, job ${jobName}: outputs reach scripts through env:, and exist`, () => {
        for (const step of steps) {
          // A `${{ }}` pasted into a script is expanded before the shell parses it: an injection path.
          expect(step.run ?? '').not.toMatch(/\$\{\{/);
        }
        const text = JSON.stringify(job);
        const ids = new Set(steps.filter(isThisAction).map((s) => s.id));
        for (const m of text.matchAll(/steps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
          if (ids.has(m[1])) expect(Object.keys(action.outputs)).toContain(m[2]);
        }
        for (const m of text.matchAll(/needs\.([\w-]+)\.outputs\.([\w-]+)/g)) {
          const upstream = workflow.jobs?.[m[1]!];
          expect(upstream, `job ${m[1]}`).toBeDefined();
          expect(Object.keys(upstream!.outputs ?? {})).toContain(m[2]);
        }
      });
    }
  });
});
