import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { INPUTS, type InputSpec, readConfig, SECRET_INPUTS, STORAGE_INPUTS } from '../../src/inputs.js';
import { SecretRegistry } from '../../src/secrets.js';

interface ActionInput {
  description: string;
  required?: boolean;
  default?: unknown;
}

/** The repository's own action.yml, as the runner reads it. */
const actionYml = parse(readFileSync(new URL('../../action.yml', import.meta.url), 'utf8')) as {
  inputs: Record<string, ActionInput>;
};
const table: readonly InputSpec[] = INPUTS;

describe('the input table (src/inputs.ts) is action.yml', () => {
  it('has the same inputs in the same order', () => {
    expect(table.map((i) => i.name)).toEqual(Object.keys(actionYml.inputs));
  });

  it.each(table.map((i) => [i.name, i] as const))('%s has the same default and required', (name, spec) => {
    const input = actionYml.inputs[name]!;
    expect(spec.default, `default of ${name}`).toBe(input.default);
    expect(spec.required ?? false, `required of ${name}`).toBe(input.required ?? false);
  });

  it('lists as secret exactly the inputs whose description starts with "Secret."', () => {
    const described = Object.entries(actionYml.inputs)
      .filter(([, i]) => i.description.startsWith('Secret.'))
      .map(([name]) => name);
    expect([...SECRET_INPUTS]).toEqual(described);
  });

  it('names every choice of an input in its description, and each choice default is a choice', () => {
    for (const spec of table.filter((i) => i.choices !== undefined)) {
      const description = actionYml.inputs[spec.name]!.description;
      for (const c of spec.choices!)
        expect(description, `${spec.name}: ${c}`).toMatch(new RegExp(`\\b${c}\\b`));
      expect(spec.choices, spec.name).toContain(spec.default);
    }
  });

  it('gives every boolean input a boolean default', () => {
    for (const spec of table.filter((i) => i.kind === 'boolean'))
      expect(['true', 'false']).toContain(spec.default);
  });

  it('lists the storage inputs that an external:// collection rejects', () => {
    expect(STORAGE_INPUTS).toEqual([
      'aws-access-key-id',
      'aws-secret-access-key',
      'aws-session-token',
      'aws-region',
      's3-endpoint',
      's3-path-style',
      's3-auth',
      'assume-role',
      'prune-keep-last',
      'prune-older-than',
      'prune-dry-run',
    ]);
  });
});

/** `input → default cell` for the rows of docs/inputs.md's table; a row naming several inputs lists their defaults in order. */
function docsDefaults(): Map<string, string> {
  const docs = readFileSync(new URL('../../docs/inputs.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const line of docs.split('\n').filter((l) => l.startsWith('| `'))) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const names = [...cells[1]!.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]!);
    const def = cells[3]!;
    const literals = /^`[^`]*`(, `[^`]*`)*$/.test(def) ? def.split(', ') : [];
    names.forEach((name, i) => rows.set(name, literals.length === names.length ? literals[i]! : def));
  }
  return rows;
}

describe('docs/inputs.md gives the defaults of the input table', () => {
  const docs = docsDefaults();

  it('has a row for every input and none for an input that does not exist', () => {
    expect([...docs.keys()].sort()).toEqual(table.map((i) => i.name).sort());
  });

  it.each(table.map((i) => [i.name, i] as const))('%s', (name, spec) => {
    const cell = docs.get(name)!;
    if (spec.default !== undefined) expect(cell).toBe(`\`${spec.default}\``);
    expect(cell.startsWith('required'), `${name}: ${cell}`).toBe(spec.required ?? false);
  });
});

describe('readConfig reads an unset input as its default', () => {
  const required: Record<string, string> = {
    'connection-string': 'postgresql://root@db.example.com:26257/defaultdb?sslmode=verify-full',
    collection: 's3://backups/cluster',
    'aws-access-key-id': 'AKIAEXAMPLE000000001',
    'aws-secret-access-key': 'secret',
  };
  const config = (inputs: Record<string, string>) =>
    readConfig((n) => inputs[n] ?? '', {}, new SecretRegistry()).config;

  it('as if action.yml had passed every default', () => {
    const defaults = Object.fromEntries(
      Object.entries(actionYml.inputs)
        .filter(([, i]) => i.default !== undefined)
        .map(([name, i]) => [name, String(i.default)]),
    );
    expect(Object.keys(defaults).length).toBeGreaterThan(10);
    expect(config(required)).toEqual(config({ ...required, ...defaults }));
  });
});
