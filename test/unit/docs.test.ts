import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatMarkdown, renderTables, updateReadme } from '../../scripts/docs.js';
import { REPO_ROOT } from '../support/action-runner.js';

const actionYml = readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8');
const action = parse(actionYml) as {
  inputs: Record<string, { default?: string; required?: boolean }>;
  outputs: Record<string, unknown>;
  runs: Record<string, string>;
};

/** Rows `| \`name\` | default | …` of the first table after a heading in DESIGN.md. */
function designTable(design: string, heading: string): Map<string, string> {
  const section = design.slice(design.indexOf(heading));
  const rows = new Map<string, string>();
  for (const line of section.split('\n').slice(1)) {
    if (line.startsWith('### ') || line.startsWith('## ')) break;
    const cells = line.split('|').map((c) => c.trim());
    const names = [...(cells[1] ?? '').matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]!);
    for (const n of names) rows.set(n, cells[2] ?? '');
  }
  return rows;
}

describe('docs', () => {
  it('README tables are generated from action.yml', async () => {
    const path = join(REPO_ROOT, 'README.md');
    const readme = readFileSync(path, 'utf8');
    expect(await formatMarkdown(updateReadme(readme, renderTables(actionYml)), path)).toBe(readme);
  });

  it('action.yml runs one bundle for main and post on node24', () => {
    expect(action.runs).toMatchObject({ using: 'node24', main: 'dist/index.js', post: 'dist/index.js' });
  });

  const designPath = resolve(REPO_ROOT, '../shared/DESIGN.md');
  it.runIf(existsSync(designPath))(
    'action.yml has exactly the inputs and outputs of DESIGN.md, with its defaults',
    () => {
      const design = readFileSync(designPath, 'utf8');
      const inputs = designTable(design, '### Inputs');
      const outputs = designTable(design, '### Outputs');
      expect(Object.keys(action.inputs).sort()).toEqual([...inputs.keys()].sort());
      expect(Object.keys(action.outputs).sort()).toEqual([...outputs.keys()].sort());
      for (const [name, def] of inputs) {
        const literal = /^`([^`]*)`$/.exec(def)?.[1];
        if (literal !== undefined) expect(action.inputs[name]!.default, name).toBe(literal);
        if (def === '(required)') expect(action.inputs[name]!.required, name).toBe(true);
      }
    },
  );
});
