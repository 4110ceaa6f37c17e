/**
 * INS matricule (NIR or NIA) syntax: 13 characters + a 2-digit key, key = 97 − (n mod 97), where the
 * Corsican départements 2A and 2B count as 19 and 18 (INSEE NIR rules; ANS "Référentiel INS").
 * The month may be 20–42 or 50–99 (unknown or fictitious), so it is not checked as 1–12.
 * A valid key is a syntax check only: trust in an identity comes from its status, not from this.
 */

export type InsKeyCheck = { valid: true } | { valid: false; reason: 'format' | 'key' };

export function checkInsKey(matricule: string): InsKeyCheck {
  const m = /^([12378])(\d{2})(\d{2})(\d{2}|2A|2B)(\d{3})(\d{3})(\d{2})$/i.exec(matricule.trim());
  if (!m) return { valid: false, reason: 'format' };
  const body = matricule.trim().slice(0, 13).toUpperCase().replace('2A', '19').replace('2B', '18');
  const expected = 97 - Number(BigInt(body) % 97n);
  return expected === Number(m[7]) ? { valid: true } : { valid: false, reason: 'key' };
}
