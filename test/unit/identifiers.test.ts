import { describe, expect, it } from 'vitest';
import { parseDatabaseList } from '../../src/identifiers.js';

describe('grammar', () => {
  it('folds unquoted database names and keeps quoted ones', () => {
    expect(parseDatabaseList('Shop, "Weird Name", "a,b", "say ""hi"""')).toEqual([
      'shop',
      'Weird Name',
      'a,b',
      'say "hi"',
    ]);
    expect(parseDatabaseList('')).toEqual([]);
  });
});
