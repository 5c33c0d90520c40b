// Values the sidebar keeps in localStorage as JSON. Storage can be full, switched off or hold
// something an older page wrote: reading then gives the fallback, and writing returns the error
// (null when kept), so each caller decides whether a lost write matters.

/** The value kept under `key`, or `fallback` when there is none or it cannot be read. */
export function readKept(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? 'null') ?? fallback;
  } catch {
    return fallback;
  }
}

/** The list kept under `key`; an empty list for anything else. */
export function readKeptList(key) {
  const value = readKept(key, []);
  return Array.isArray(value) ? value : [];
}

/** Keeps `value` under `key`; returns null, or the error when it could not be kept. */
export function keep(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return null;
  } catch (err) {
    return err;
  }
}
