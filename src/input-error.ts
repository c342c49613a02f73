/** The error every rejected input throws: it names the input and says what to write. */

export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(`Input \`${input}\`: ${message}`);
    this.name = 'InputError';
  }
}

/** A value quoted in an error message: on one line, at most 60 characters. */
export function clip(s: string): string {
  const oneLine = s.replace(/[\r\n]+/g, '⏎');
  return oneLine.length > 60 ? `${oneLine.slice(0, 57)}…` : oneLine;
}
