/**
 * Runs the bundled action (dist/index.js) as the GitHub runner does: a child
 * process with INPUT_* variables and GITHUB_OUTPUT / GITHUB_STATE /
 * GITHUB_STEP_SUMMARY files. Used by the e2e tests, the demo and the bench.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLE = join(REPO_ROOT, 'dist', 'index.js');

export interface ActionRunOptions {
  /** Input names as in action.yml → values. */
  inputs: Record<string, string>;
  /** Extra environment (AWS_* credentials, …). */
  env?: Record<string, string>;
  /** Run the post step: saved state from the main step goes in as STATE_* variables. */
  post?: { state: Record<string, string> };
  /** Provide a GITHUB_STEP_SUMMARY file (default true). */
  summaryFile?: boolean;
  /** Kill the process after this long (default 110 s): a hung action fails the test, it does not hang it. */
  killAfterMs?: number;
}

export interface ActionRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  /** Raw GITHUB_OUTPUT, GITHUB_STATE and summary files. */
  outputFile: string;
  stateFile: string;
  summary: string;
  state: Record<string, string>;
  /** Texts of `::error::` lines. */
  errors: string[];
  warnings: string[];
  durationMs: number;
  killedByHarness: boolean;
}

export interface RunningAction {
  child: ChildProcess;
  /** stdout so far. */
  stdout(): string;
  done: Promise<ActionRunResult>;
}

/** `connection-string` → `INPUT_CONNECTION-STRING`, as the runner names them. */
export function inputEnvName(name: string): string {
  return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;
}

export function startAction(opts: ActionRunOptions): RunningAction {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run bundle\` first`);
  const dir = mkdtempSync(join(tmpdir(), 'crdb-action-run-'));
  const files = {
    output: join(dir, 'output'),
    state: join(dir, 'state'),
    summary: join(dir, 'summary.md'),
  };
  for (const f of [files.output, files.state]) writeFileSync(f, '');
  if (opts.summaryFile !== false) writeFileSync(files.summary, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dir,
    RUNNER_TEMP: dir,
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_REPOSITORY: 'acme/shop',
    GITHUB_RUN_ID: String(1_000_000 + Math.floor(Math.random() * 1_000_000)),
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_ACTIONS: 'true',
    ...(opts.summaryFile !== false ? { GITHUB_STEP_SUMMARY: files.summary } : {}),
    ...opts.env,
  };
  for (const [name, value] of Object.entries(opts.inputs)) env[inputEnvName(name)] = value;
  for (const [name, value] of Object.entries(opts.post?.state ?? {})) env[`STATE_${name}`] = value;

  const started = Date.now();
  const child = spawn(process.execPath, [BUNDLE], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let killedByHarness = false;
  const killer = setTimeout(() => {
    killedByHarness = true;
    child.kill('SIGKILL');
  }, opts.killAfterMs ?? 110_000);

  const done = new Promise<ActionRunResult>((resolveDone, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      const read = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8') : '');
      const outputFile = read(files.output);
      const stateFile = read(files.state);
      const result: ActionRunResult = {
        code,
        signal,
        stdout,
        stderr,
        outputs: parseCommandFile(outputFile),
        outputFile,
        stateFile,
        summary: read(files.summary),
        state: parseCommandFile(stateFile),
        errors: workflowCommands(stdout, 'error'),
        warnings: workflowCommands(stdout, 'warning'),
        durationMs: Date.now() - started,
        killedByHarness,
      };
      rmSync(dir, { recursive: true, force: true });
      resolveDone(result);
    });
  });
  return { child, stdout: () => stdout, done };
}

export function runAction(opts: ActionRunOptions): Promise<ActionRunResult> {
  return startAction(opts).done;
}

/** Parse the runner's `name<<DELIM\nvalue\nDELIM` file format (later values win). */
export function parseCommandFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i]!);
    if (m) {
      const [, name, delim] = m;
      const value: string[] = [];
      i++;
      while (i < lines.length && lines[i] !== delim) value.push(lines[i++]!);
      out[name!] = value.join('\n');
    } else if (lines[i]!.includes('=')) {
      const at = lines[i]!.indexOf('=');
      out[lines[i]!.slice(0, at)] = lines[i]!.slice(at + 1);
    }
  }
  return out;
}

/** Texts of `::error::`/`::warning::` workflow commands in stdout (properties stripped, %0A decoded). */
export function workflowCommands(stdout: string, kind: 'error' | 'warning' | 'add-mask'): string[] {
  const re = new RegExp(`^::${kind}(?: [^:]*)?::(.*)$`, 'gm');
  return [...stdout.matchAll(re)].map((m) =>
    m[1]!.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%'),
  );
}
