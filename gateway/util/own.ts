/**
 * `table[key]` for keys that come from the document: only the table's own entries, never an
 * inherited `Object.prototype` member (a code written `constructor` or `__proto__` must find nothing).
 */
export function own<T>(table: Readonly<Record<string, T>>, key: string | undefined): T | undefined {
  return key !== undefined && Object.hasOwn(table, key) ? table[key] : undefined;
}
