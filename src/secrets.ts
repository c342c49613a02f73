/**
 * Every secret this run holds, in every form it can take on the way out
 * (raw, encodeURIComponent, form-encoded), and one scrubber for any text
 * that leaves the process.
 */

export type Masker = (value: string) => void;

/** Forms shorter than this are masked for the runner but not scrubbed from our own texts. */
const MIN_SCRUB_LENGTH = 3;

export class SecretRegistry {
  private readonly all = new Set<string>();
  private sorted: string[] = [];

  constructor(private readonly mask: Masker = () => undefined) {}

  /**
   * Register a secret: its raw, URL-encoded and form-encoded forms are masked
   * at once. Multi-line values (PEM keys) are also masked line by line,
   * because the runner matches masks within a line.
   */
  add(value: string | undefined): void {
    if (value === undefined || value === '') return;
    const forms = new Set<string>([value, ...encodedForms(value)]);
    if (value.includes('\n')) {
      for (const line of value.split(/\r?\n/)) {
        const t = line.trim();
        if (t.length >= 8 && !/^-----(BEGIN|END) /.test(t)) forms.add(t);
      }
    }
    for (const form of forms) {
      if (this.all.has(form)) continue;
      this.all.add(form);
      this.mask(form);
    }
    this.sorted = [...this.all]
      .filter((f) => f.length >= MIN_SCRUB_LENGTH)
      .sort((a, b) => b.length - a.length);
  }

  /** Replace every registered form with `***`, longest first. */
  scrub(text: string): string {
    let out = text;
    for (const form of this.sorted) if (out.includes(form)) out = out.split(form).join('***');
    return out;
  }

  contains(text: string): boolean {
    return this.sorted.some((f) => text.includes(f));
  }

  get forms(): readonly string[] {
    return [...this.all];
  }
}

/**
 * encodeURIComponent; form encoding as URLSearchParams writes it; and Go's
 * url.QueryEscape, which CockroachDB uses when it re-encodes a URI (it keeps
 * `~` but escapes `!'()*`, which encodeURIComponent keeps).
 */
export function encodedForms(value: string): string[] {
  const form = new URLSearchParams({ v: value }).toString().slice(2);
  const uri = encodeURIComponent(value);
  const go = uri
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
  return [uri, form, form.replace(/\+/g, '%20'), go];
}
