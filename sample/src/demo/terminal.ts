import { colorsWanted } from '../create-app.js';

const colors = colorsWanted();

function ansi(open: number, close: number): (text: string) => string {
  return (text) => (colors ? `\x1b[${open}m${text}\x1b[${close}m` : text);
}

/** ANSI styles on a terminal, plain text when the output goes to a file or a pipe (or NO_COLOR is set). */
export const style = {
  bold: ansi(1, 22),
  dim: ansi(2, 22),
  green: ansi(32, 39),
  red: ansi(31, 39),
  yellow: ansi(33, 39),
  cyan: ansi(36, 39),
};

export function heading(text: string): void {
  console.log(`\n${style.bold(text)}`);
}

export function say(text: string): void {
  console.log(`  ${text}`);
}

/** Prints rows in aligned columns, the first row as the header. */
export function table(rows: string[][]): void {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => visibleLength(row[column]))));
  const format = (row: string[]) =>
    row
      .map((cell, column) => cell + ' '.repeat(widths[column] - visibleLength(cell)))
      .join('  ')
      .trimEnd();
  say(style.dim(format(rows[0])));
  for (const row of rows.slice(1)) say(format(row));
}

function visibleLength(text: string): number {
  return text.replace(/\x1b\[\d+m/g, '').length;
}
