/** Database and role names as a user writes them in an input, folded as SQL folds them. */
import { clip, InputError } from './errors.js';

const MAX_IDENTIFIER_BYTES = 128;
const MAX_ROLE_BYTES = 63;

/**
 * Comma-separated database names with SQL identifier rules: unquoted names
 * are folded to lower case; a double-quoted name keeps spaces, case and
 * commas, with `""` for a literal quote.
 */
export function parseDatabaseList(text: string): string[] {
  const name = 'databases';
  if (text.length > 4096)
    throw new InputError(
      name,
      'is longer than 4096 characters. List fewer databases, or back up the whole cluster.',
    );
  if (text.trim() === '') return [];
  const names: string[] = [];
  let i = 0;
  const s = text;
  const skipSpace = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  for (;;) {
    skipSpace();
    let ident: string;
    if (s[i] === '"') {
      i++;
      let out = '';
      for (;;) {
        if (i >= s.length)
          throw new InputError(name, `a quoted name is not closed. Write names like shop, "Weird Name".`);
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            out += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        out += s[i++];
      }
      ident = out;
      if (ident === '') throw new InputError(name, 'an empty quoted name ("") is not a database. Remove it.');
    } else {
      const start = i;
      while (i < s.length && s[i] !== ',') i++;
      const raw = s.slice(start, i).trim();
      if (raw === '')
        throw new InputError(name, 'has an empty name between commas. Write names like shop, "Weird Name".');
      ident = raw.toLowerCase();
      if (!/^[a-z_][a-z0-9_$]*$/.test(ident)) {
        throw new InputError(
          name,
          `"${clip(raw)}" is not a plain SQL identifier (letters, digits, _ and $; not starting with a digit). Put such a name in double quotes, e.g. "${clip(raw).replace(/"/g, '""')}".`,
        );
      }
    }
    if (/[\u0000-\u001f\u007f]/.test(ident)) {
      throw new InputError(
        name,
        'a name contains a control character or a line break. Write names on one line.',
      );
    }
    if (Buffer.byteLength(ident) > MAX_IDENTIFIER_BYTES) {
      throw new InputError(name, `a name is longer than ${MAX_IDENTIFIER_BYTES} bytes.`);
    }
    if (names.includes(ident))
      throw new InputError(name, `"${clip(ident)}" is listed twice. List each database once.`);
    names.push(ident);
    skipSpace();
    if (i >= s.length) break;
    if (s[i] !== ',')
      throw new InputError(name, `unexpected text after a quoted name. Separate names with commas.`);
    i++;
  }
  return names;
}

export function parseRole(value: string, name: string): string {
  const folded = value.toLowerCase();
  if (!/^[a-z_][a-z0-9_.-]*$/.test(folded) || Buffer.byteLength(folded) > MAX_ROLE_BYTES) {
    throw new InputError(
      name,
      `"${clip(value)}" is not a role name. Write a plain user or role name (letters, digits, _, . and -, up to ${MAX_ROLE_BYTES} bytes), e.g. backup_user.`,
    );
  }
  return folded;
}
