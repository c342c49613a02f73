/**
 * Session variables from a startup message, applied as CockroachDB applies
 * them (pkg/sql/pgwire/pre_serve_options.go, parseClientProvidedSessionParameters):
 * the parameters in the order the client sent them, later ones overwriting
 * earlier ones, and `options` expanded in place into its `-c key=value` /
 * `--key=value` settings. pg sends `options` after `application_name`
 * (pg/lib/client.js getStartupConf), so `options=-c application_name=x` wins.
 */
import { SqlError } from './protocol-types.js';

/** Startup keys that are not session variables. */
const NOT_VARIABLES = new Set(['user', 'database', 'replication', 'results_buffer_size', 'crdb:remote_addr']);

export function sessionDefaults(params: ReadonlyMap<string, string>): Map<string, string> {
  const vars = new Map<string, string>();
  for (const [rawKey, value] of params) {
    const key = rawKey.toLowerCase();
    if (key === 'options') {
      for (const o of parseOptions(value)) setVar(vars, o.key, o.value);
    } else if (!NOT_VARIABLES.has(key)) {
      setVar(vars, key, value);
    }
  }
  return vars;
}

function setVar(vars: Map<string, string>, key: string, value: string): void {
  const k = key.toLowerCase();
  // Internal bookkeeping of the test cluster is not a session variable.
  if (k.startsWith('__')) return;
  vars.set(k, value);
}

/** parseOptions: '-c key=value', '-ckey=value', '--key=value', separated by unescaped spaces. */
export function parseOptions(optionsString: string): { key: string; value: string }[] {
  let raw: string;
  try {
    // Go's url.QueryUnescape: '+' is a space.
    raw = decodeURIComponent(optionsString.replace(/\+/g, ' '));
  } catch {
    throw new SqlError('08P01', `failed to unescape options "${optionsString}"`);
  }
  const words = splitOptions(raw);
  const out: { key: string; value: string }[] = [];
  let lastWasDashC = false;
  for (const word of words) {
    let prefix = word.length > 1 ? word.slice(0, 2) : '';
    if (word === '-c') {
      lastWasDashC = true;
      continue;
    } else if (lastWasDashC) {
      lastWasDashC = false;
      prefix = '';
    } else if (prefix !== '--' && prefix !== '-c') {
      throw new SqlError('08P01', `option "${word}" is invalid, must have prefix '-c' or '--'`);
    }
    const kv = word.split('=');
    if (kv.length !== 2) throw new SqlError('08P01', `option "${word}" is invalid, check '='`);
    const key = kv[0]!.startsWith(prefix) ? kv[0]!.slice(prefix.length) : kv[0]!;
    out.push({ key: key.replace(/-/g, '_'), value: kv[1]! });
  }
  return out;
}

/** splitOptions: split on whitespace unless escaped with a backslash; runs of spaces are skipped. */
function splitOptions(options: string): string[] {
  const res: string[] = [];
  let i = 0;
  while (i < options.length) {
    while (i < options.length && /\s/.test(options[i]!)) i++;
    if (i === options.length) break;
    let word = '';
    let lastWasEscape = false;
    while (i < options.length) {
      const c = options[i]!;
      if (/\s/.test(c) && !lastWasEscape) break;
      if (!lastWasEscape && c === '\\') lastWasEscape = true;
      else {
        lastWasEscape = false;
        word += c;
      }
      i++;
    }
    res.push(word);
  }
  return res;
}
