import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ActionYml } from '../../scripts/docs.js';
import { expectedReadme, REPO_ROOT, renderTables, staleSections, updateReadme } from '../../scripts/docs.js';

const action = parse(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8')) as ActionYml & {
  name: string;
  description: string;
  branding: { icon: string; color: string };
  runs: Record<string, string>;
};

/** `name → default cell` for the rows of the first table after `heading` in DESIGN.md. */
function designTable(design: string, heading: string): Map<string, string> {
  const start = design.indexOf(heading);
  if (start < 0) throw new Error(`DESIGN.md has no "${heading}" section`);
  const rows = new Map<string, string>();
  let inTable = false;
  for (const line of design.slice(start).split('\n').slice(1)) {
    if (line.startsWith('#')) break;
    if (!line.startsWith('|')) {
      if (inTable) break;
      continue;
    }
    inTable = true;
    const cells = line.split('|').map((c) => c.trim());
    // `client-cert`, `client-key` share a row; the header and separator rows have no backticked names.
    for (const m of (cells[1] ?? '').matchAll(/`([a-z0-9-]+)`/g)) rows.set(m[1]!, cells[2] ?? '');
  }
  return rows;
}

describe('docs', () => {
  it('README tables are what scripts/docs.ts generates from action.yml', async () => {
    const { current, next } = await expectedReadme();
    expect(staleSections(current, next), 'run `npx tsx scripts/docs.ts` and commit README.md').toEqual([]);
    expect(next).toBe(current);
  });

  it('renders every input and output, escaping pipes', () => {
    const tables = renderTables(
      'inputs:\n  a-b:\n    description: "x | y"\n    required: true\n  c:\n    description: z\n    default: "5s"\n' +
        'outputs:\n  o:\n    description: out\n',
    );
    expect(tables.inputs).toContain('| `a-b` | yes |  | x \\| y |');
    expect(tables.inputs).toContain('| `c` | no | `5s` | z |');
    expect(tables.outputs).toContain('| `o` | out |');
    expect(() => updateReadme('no markers', tables)).toThrow(/markers/);
  });

  it('action.yml has Marketplace metadata and runs one bundle for main and post on node24', () => {
    expect(action.name).toBeTruthy();
    expect(action.description.length).toBeLessThanOrEqual(125);
    expect(action.branding.icon).toBeTruthy();
    expect(action.branding.color).toBeTruthy();
    expect(action.runs).toEqual({
      using: 'node24',
      main: 'dist/index.js',
      post: 'dist/index.js',
      'post-if': 'always()',
    });
    for (const [name, i] of Object.entries(action.inputs)) expect(i.description, name).toBeTruthy();
    for (const [name, o] of Object.entries(action.outputs)) expect(o.description, name).toBeTruthy();
  });

  const designPath = resolve(REPO_ROOT, '../shared/DESIGN.md');
  it('action.yml has exactly the inputs and outputs of DESIGN.md, with its defaults', (ctx) => {
    if (!existsSync(designPath)) {
      ctx.skip(`${designPath} is absent: the check against DESIGN.md needs ../shared beside the repository`);
      return;
    }
    const design = readFileSync(designPath, 'utf8');
    const inputs = designTable(design, '### Inputs');
    const outputs = designTable(design, '### Outputs');
    expect(inputs.size).toBeGreaterThan(20);
    expect(Object.keys(action.inputs).sort()).toEqual([...inputs.keys()].sort());
    expect(Object.keys(action.outputs).sort()).toEqual([...outputs.keys()].sort());
    for (const [name, def] of inputs) {
      const input = action.inputs[name]!;
      if (def === '(required)') {
        expect(input.required, `${name} is required`).toBe(true);
        expect(input.default, `${name} has no default`).toBeUndefined();
        continue;
      }
      expect(input.required ?? false, `${name} is optional`).toBe(false);
      // A literal default (`-10s`) is action.yml's default; anything else (empty, "none", the
      // environment, another input) means action.yml has none and the action works it out.
      const literal = /^`([^`]*)`$/.exec(def)?.[1];
      expect(input.default, `default of ${name} (DESIGN.md: ${def || 'empty'})`).toBe(literal);
    }
  });
});

describe('README troubleshooting', () => {
  /** Every .ts file under dir, as one text; `\`` in template literals read as a backtick. */
  function sourceText(dir: string): string {
    const out: string[] = [];
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) out.push(sourceText(path));
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
        out.push(readFileSync(path, 'utf8').replace(/\\`/g, '`'));
    }
    return out.join('\n');
  }

  it('quotes only messages that the action (src/) or the cluster and S3 texts it relays (test/support/) really print', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## Troubleshooting'),
      readme.indexOf('## Supported versions'),
    );
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| message') && !l.startsWith('| ---'));
    expect(rows.length).toBeGreaterThan(15);
    // The texts the runner shows: the action's own, and CockroachDB's and S3's as the test servers reproduce them.
    const source = sourceText(join(REPO_ROOT, 'src')) + sourceText(join(REPO_ROOT, 'test', 'support'));
    const missing: string[] = [];
    for (const row of rows) {
      const first = row.split(/(?<!\\)\|/)[1]!;
      const quoted = [...first.matchAll(/``\s?(.+?)\s?``|`([^`]+)`/g)].map((m) => (m[1] ?? m[2])!);
      expect(quoted.length, row).toBeGreaterThan(0);
      for (const q of quoted) {
        // `<name>` stands for any text; the rest must be in the source as written.
        const pattern = q
          .split(/<[a-z-]+>/)
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('.{1,40}?');
        if (!new RegExp(pattern).test(source)) missing.push(q);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('README privileges', () => {
  it('says why grant-to grants CONTROLJOB on 25.x although 25.1 owners may cancel their own jobs', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## Privileges'),
      readme.indexOf('## Restoring from the outputs'),
    );
    expect(section).not.toContain('25.1+ lets owners cancel their own jobs.');
    expect(section).toMatch(/`grant-to` grants CONTROLJOB on 25\.x too/);
    expect(section).toMatch(/not available until the upgrade to 25\.1 is\s+finalized/);
    // That it does grant it there is asserted e2e (backup.test.ts: GRANT SYSTEM CONTROLJOB on 25.2).
  });
});
