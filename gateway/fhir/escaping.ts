/**
 * FHIR search values escape `,` `|` `$` and `\` with a backslash (R4 search.html#escaping): split
 * on a separator only where it is not escaped. The escapes themselves stay in the parts, so that a
 * later split on another separator sees them too.
 */
export function splitEscaped(value: string, separator: string, limit = Infinity): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\' && i + 1 < value.length) {
      current += c + (value[i + 1] as string);
      i++;
    } else if (c === separator && parts.length < limit - 1) {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}
