/**
 * A deep copy of a JSON value (a FHIR resource) that shares its strings. Strings are immutable, so
 * sharing them is safe; structuredClone copies each one, and a document Bundle carries its CDA and
 * PDFs as base64 strings of hundreds of kilobytes — copying them at every stage that returns a new
 * Bundle cost more than the stage itself.
 */
export function copyJson<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copyJson) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    // An own "__proto__" key (JSON.parse makes them) stays a plain property instead of setting the prototype.
    if (key === '__proto__') Object.defineProperty(out, key, { value: copyJson(field), enumerable: true, writable: true, configurable: true });
    else out[key] = copyJson(field);
  }
  return out as T;
}
