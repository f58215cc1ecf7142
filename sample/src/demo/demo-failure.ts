/** Something the demo expected did not happen; its message says what. */
export class DemoFailure extends Error {
  override readonly name = 'DemoFailure';
}

export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new DemoFailure(message);
}
