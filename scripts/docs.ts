/**
 * Generates the inputs and outputs tables of README.md from action.yml,
 * between `<!-- inputs:start -->` / `<!-- inputs:end -->` and
 * `<!-- outputs:start -->` / `<!-- outputs:end -->`.
 *
 *   npx tsx scripts/docs.ts           rewrite README.md
 *   npx tsx scripts/docs.ts --check   exit 1 when README.md is out of date (CI)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { parse } from 'yaml';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface ActionYml {
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { description: string }>;
}

type Key = 'inputs' | 'outputs';

const cell = (s: string): string =>
  s
    .trim()
    .replace(/\|/g, '\\|')
    .replace(/\s*\n\s*/g, ' ');

export function renderTables(actionYml: string): Record<Key, string> {
  const a = parse(actionYml) as ActionYml;
  const inputs = ['| input | required | default | description |', '|---|---|---|---|'];
  for (const [name, i] of Object.entries(a.inputs)) {
    const def = i.default !== undefined && i.default !== '' ? `\`${i.default}\`` : '';
    inputs.push(`| \`${name}\` | ${i.required ? 'yes' : 'no'} | ${def} | ${cell(i.description)} |`);
  }
  const outputs = ['| output | description |', '|---|---|'];
  for (const [name, o] of Object.entries(a.outputs)) outputs.push(`| \`${name}\` | ${cell(o.description)} |`);
  return { inputs: inputs.join('\n'), outputs: outputs.join('\n') };
}

export function updateReadme(readme: string, tables: Record<Key, string>): string {
  const put = (text: string, key: Key): string => {
    const re = new RegExp(`(<!-- ${key}:start -->)[\\s\\S]*?(<!-- ${key}:end -->)`);
    if (!re.test(text))
      throw new Error(`README.md has no <!-- ${key}:start --> / <!-- ${key}:end --> markers`);
    return text.replace(re, () => `<!-- ${key}:start -->\n${tables[key]}\n<!-- ${key}:end -->`);
  };
  return put(put(readme, 'inputs'), 'outputs');
}

/** The README as Prettier writes it, so that the generated tables and `prettier --check` agree. */
export async function formatMarkdown(text: string, path: string): Promise<string> {
  return format(text, { ...(await resolveConfig(path)), parser: 'markdown' });
}

/** README.md as it should be, given action.yml. */
export async function expectedReadme(
  root = REPO_ROOT,
): Promise<{ path: string; current: string; next: string }> {
  const path = join(root, 'README.md');
  const current = readFileSync(path, 'utf8');
  const tables = renderTables(readFileSync(join(root, 'action.yml'), 'utf8'));
  return { path, current, next: await formatMarkdown(updateReadme(current, tables), path) };
}

/** The marked sections that differ between two READMEs. */
export function staleSections(current: string, next: string): Key[] {
  const section = (text: string, key: Key): string =>
    new RegExp(`<!-- ${key}:start -->[\\s\\S]*?<!-- ${key}:end -->`).exec(text)?.[0] ?? '';
  return (['inputs', 'outputs'] as const).filter((k) => section(current, k) !== section(next, k));
}

async function main(): Promise<void> {
  const { path, current, next } = await expectedReadme();
  if (!process.argv.includes('--check')) {
    writeFileSync(path, next);
    console.log(
      current === next ? 'README.md was up to date.' : 'README.md tables regenerated from action.yml.',
    );
    return;
  }
  if (current !== next) {
    const stale = staleSections(current, next);
    console.error(
      `README.md is out of date with action.yml (${stale.length > 0 ? `${stale.join(' and ')} table` : 'formatting'}): ` +
        'run `npx tsx scripts/docs.ts` and commit README.md.',
    );
    process.exit(1);
  }
  console.log('README.md tables match action.yml.');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
