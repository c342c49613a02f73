/**
 * Generates the inputs and outputs tables of README.md from action.yml.
 * `--check` fails when README.md is out of date (CI runs it).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { parse } from 'yaml';
import { REPO_ROOT } from '../test/support/action-runner.js';

interface ActionYml {
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { description: string }>;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderTables(actionYml: string): { inputs: string; outputs: string } {
  const a = parse(actionYml) as ActionYml;
  const inputs = ['| input | required | default | description |', '|---|---|---|---|'];
  for (const [name, i] of Object.entries(a.inputs)) {
    inputs.push(
      `| \`${name}\` | ${i.required ? 'yes' : 'no'} | ${i.default !== undefined ? `\`${i.default}\`` : ''} | ${cell(i.description)} |`,
    );
  }
  const outputs = ['| output | description |', '|---|---|'];
  for (const [name, o] of Object.entries(a.outputs)) outputs.push(`| \`${name}\` | ${cell(o.description)} |`);
  return { inputs: inputs.join('\n'), outputs: outputs.join('\n') };
}

export function updateReadme(readme: string, tables: { inputs: string; outputs: string }): string {
  const put = (text: string, key: 'inputs' | 'outputs'): string => {
    const re = new RegExp(`(<!-- ${key}:start -->)[\\s\\S]*?(<!-- ${key}:end -->)`);
    if (!re.test(text))
      throw new Error(`README.md has no <!-- ${key}:start --> / <!-- ${key}:end --> markers`);
    return text.replace(re, `$1\n${tables[key]}\n$2`);
  };
  return put(put(readme, 'inputs'), 'outputs');
}

/** The README as Prettier would write it, so the generated tables and the format check agree. */
export async function formatMarkdown(text: string, path: string): Promise<string> {
  return format(text, { ...(await resolveConfig(path)), parser: 'markdown' });
}

const isMain = process.argv[1]?.endsWith('docs.ts');
if (isMain) {
  const readmePath = join(REPO_ROOT, 'README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const next = await formatMarkdown(
    updateReadme(readme, renderTables(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8'))),
    readmePath,
  );
  if (process.argv.includes('--check')) {
    if (next !== readme) {
      console.error(
        'README.md inputs/outputs tables differ from action.yml: run `npm run docs` and commit README.md.',
      );
      process.exit(1);
    }
    console.log('README.md tables match action.yml.');
  } else {
    writeFileSync(readmePath, next);
  }
}
