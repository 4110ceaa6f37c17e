/**
 * The stages of a mail entry before its documents join the document stages (ARCHITECTURE.md):
 * **unwrap** removes the S/MIME layers — decrypt (RFC 8551 §3.3), verify the signature over the
 * exact received bytes (§3.5 multipart/signed, §3.4 opaque signed-data) — and applies the S/MIME
 * policy; **extract** finds the documents: IHE XDM zips (their METADATA.XML checked), bare CDA
 * attachments, also inside forwarded messages (DOMAIN.md §2).
 */
import { PasserelleError } from '../errors.js';
import { insIdentifiers } from '../identity/traits.js';
import { mailboxes } from '../mail/mdn.js';
import { canonicalCrlf, describeSecurity, findAttachments, headerValue, parseMessage, type MimePart } from '../mail/mime.js';
import { readMssHeaders, type MssHeaders } from '../mail/mss-headers.js';
import { readXdm } from '../mail/xdm.js';
import { decryptEnveloped, verifySigned, type Identity, type TrustStore } from '../smime/index.js';
import { patientOf, type EntryWork, type Stage } from './stages.js';

export interface SmimePolicy {
  requireSignature: boolean;
  requireEncryption: boolean;
  /** Sender domains whose plain mail is accepted (the MSSanté trust space: TLS between operators). */
  plainDomains: readonly string[];
}

export interface MailSecurity {
  identity: Identity | undefined;
  trust: TrustStore | undefined;
  policy: SmimePolicy;
}

/** What unwrap leaves for extract, and extract for the cross-check. */
export interface MailWork extends EntryWork {
  mail?: { content: MimePart; from: string };
  mss?: MssHeaders;
}

/** S/MIME layers are nested at most this deep (signed then encrypted then signed…). */
const MAX_LAYERS = 4;

export function unwrapStage(security: MailSecurity): Stage {
  return {
    name: 'unwrap',
    reached: 'unwrapped',
    run(work: MailWork) {
      const root = parseMessage(work.raw);
      // The bare From address (RFC 5322 §3.4), lower-cased: compared with the signer's certificate and the policy's domains.
      const from = (mailboxes(headerValue(root, 'from') ?? '')[0] ?? '').toLowerCase();
      const receivedAt = new Date();
      let current = root;
      let encrypted = false;
      let signer: string | undefined;
      let signerCertificate: string | undefined;
      for (let layer = 0; layer < MAX_LAYERS; layer++) {
        const outer = describeSecurity(current).find((l) => !l.forwarded);
        if (!outer) break;
        if (outer.kind === 'pkcs7-mime' && outer.smimeType !== 'signed-data') {
          if (!security.identity) throw new PasserelleError('SMIME_NOT_RECIPIENT', 'the gateway has no S/MIME identity configured (smime.certificate, smime.privateKey)');
          current = parseMessage(decryptEnveloped(outer.part.content, security.identity));
          encrypted = true;
          continue;
        }
        if (!security.trust) throw new PasserelleError('SMIME_SIGNER_NOT_TRUSTED', 'no trust anchors are configured (smime.trustAnchors)');
        // multipart/signed: the signature covers the first part's exact bytes (RFC 8551 §3.5);
        // opaque signed-data carries its content inside (§3.4).
        let signed: MimePart | undefined;
        let signature = outer.part.content;
        if (outer.kind === 'multipart-signed') {
          if (outer.problem || !outer.content || !outer.signature) throw new PasserelleError('SMIME_MALFORMED', outer.problem ?? 'multipart/signed without its two parts');
          [signed, signature] = [outer.content, outer.signature.content];
        }
        const verdict = verifySigned({ der: signature, ...(signed ? { detachedContent: canonicalCrlf(signed.raw) } : {}) }, security.trust, { from, at: receivedAt });
        if (!verdict.ok) throw new PasserelleError(verdict.code, verdict.detail);
        signer = verdict.signer.email;
        signerCertificate = verdict.signer.certificate.toString();
        current = signed ?? parseMessage(verdict.content);
      }
      const domain = from.split('@')[1] ?? '';
      const plainAllowed = security.policy.plainDomains.some((d) => d.toLowerCase() === domain);
      if (!plainAllowed && security.policy.requireSignature && !signer) throw new PasserelleError('SMIME_POLICY_VIOLATION', 'the message is not signed');
      if (!plainAllowed && security.policy.requireEncryption && !encrypted) throw new PasserelleError('SMIME_POLICY_VIOLATION', 'the message is not encrypted');
      work.mail = { content: current, from };
      // The signer's certificate (public) is kept so that the acknowledgement can be encrypted to it.
      return Promise.resolve({ mail: { signed: signer !== undefined, encrypted, signer: signer ?? null, signerCertificate: signerCertificate ?? null, messageId: headerValue(root, 'message-id') ?? null } });
    },
  };
}

export const extractStage: Stage = {
  name: 'extract',
  reached: 'extracted',
  async run(work: MailWork) {
    if (!work.mail) throw new Error('stage run out of order: nothing unwrapped');
    const attachments = findAttachments(work.mail.content);
    work.documents = [];
    for (const attachment of attachments) {
      if (attachment.kind === 'cda') {
        // The MIME part, not the attachment's file name: a file name may name the patient, and the
        // journal keeps no patient traits.
        work.documents.push({ raw: attachment.content, source: attachment.part.path ? `MIME part ${attachment.part.path}` : "the message's body", info: {} });
      } else if (attachment.kind === 'xdm') {
        const xdm = await readXdm(attachment.content);
        for (const doc of xdm.documents) {
          if (!/xml/i.test(doc.mimeType ?? '') && !/\.xml$/i.test(doc.path)) continue; // renderings (PDF) travel inside their CDA
          if (doc.masked && !work.overrides.has('DOCUMENT_MASKED')) throw new PasserelleError('DOCUMENT_MASKED', `${doc.path} is masked from professionals (MASQUE_PS)`);
          const patient = doc.patientId ?? xdm.submissionSet.patientId;
          work.documents.push({ raw: doc.bytes, source: doc.path, info: {}, ...(patient?.root ? { expectedPatient: { root: patient.root, id: patient.id } } : {}) });
        }
      }
    }
    if (!work.documents.length) {
      const pdfs = attachments.filter((a) => a.kind === 'pdf').length;
      throw new PasserelleError('MIME_NO_DOCUMENT', pdfs ? `${pdfs} PDF attachment(s) and no CDA: a PDF travels inside a CDA (level 1, nonXMLBody) or an IHE_XDM.zip with its CDA` : undefined);
    }
    const mss = readMssHeaders(work.mail.content);
    work.mss = mss;
    return { attachments: attachments.map((a) => ({ kind: a.kind, forwarded: a.forwarded })), documents: work.documents.map((d) => ({ source: d.source })), mss: { codeCda: mss.codeCda, ins: mss.ins ?? null } };
  },
};

/**
 * The MSSanté headers are the sender's summary of the documents (DOMAIN.md §2: "never trust them:
 * recompute from the CDA and flag disagreement"): `X-MSS-CODECDA` against the documents' type
 * codes, `X-MSS-INS` against the presence of an INS. A disagreement is a warning in the journal,
 * never a refusal: the documents themselves are what is integrated.
 */
export const crossCheckStage: Stage = {
  name: 'cross-check',
  reached: 'converted',
  run(work: MailWork) {
    const warnings: { header: string; declared: string; found: string }[] = [];
    const mss = work.mss;
    if (mss) {
      const types = work.documents.map((d) => d.info.documentType).filter((t): t is string => typeof t === 'string');
      if (mss.codeCda.length && [...new Set(types)].sort().join(',') !== [...new Set(mss.codeCda)].sort().join(',')) {
        warnings.push({ header: 'X-MSS-CODECDA', declared: mss.codeCda.join(','), found: types.join(',') });
      }
      const hasIns = work.documents.some((d) => {
        const patient = patientOf(d.bundle);
        return patient !== undefined && insIdentifiers(patient).length > 0;
      });
      if (mss.ins && (mss.ins === 'O') !== hasIns) warnings.push({ header: 'X-MSS-INS', declared: mss.ins, found: hasIns ? 'O' : 'N' });
    }
    return Promise.resolve({ mssWarnings: warnings });
  },
};
