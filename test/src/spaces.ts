let next = 100 + Math.floor(Math.random() * 1000) * 1000;

/** A space no other test has used, so tests in one app never see each other's rows. */
export function freshSpace(): number {
  return next++;
}
