/**
 * Without a `clients` setting, `npm start` must still give a working gateway: sample clients are
 * generated on first start — one sender, one admin, one PTA per DAC of the ROR fixture — with
 * random tokens, kept in <dataDir>/sample-clients.json (mode 0600) and printed once, when created.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Organization } from '@medplum/fhirtypes';
import type { ClientConfig } from './http/auth.js';
import { isDac } from './routing/route.js';

const token = (): string => randomBytes(24).toString('base64url');

/** DAC/PTA organizations, as routing recognises them. */
function dacOrganizations(ror: Bundle): Organization[] {
  return (ror.entry ?? [])
    .map((e) => e.resource)
    .filter((r): r is Organization => r?.resourceType === 'Organization')
    .filter(isDac);
}

export function sampleClients(dataDir: string, ror: Bundle): { clients: ClientConfig[]; created: boolean; file: string } {
  const file = join(dataDir, 'sample-clients.json');
  if (existsSync(file)) return { clients: JSON.parse(readFileSync(file, 'utf8')) as ClientConfig[], created: false, file };
  const clients: ClientConfig[] = [
    { id: 'hopital-demo', token: token(), role: 'sender' },
    { id: 'ops', token: token(), role: 'admin' },
  ];
  for (const org of dacOrganizations(ror)) {
    const id = org.identifier?.find((i) => i.value)?.value;
    if (!id) continue;
    clients.push({ id: `pta-${id.replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(0, 64), token: token(), role: 'pta', organization: id });
  }
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(clients, null, 2)}\n`, { mode: 0o600 });
  return { clients, created: true, file };
}
