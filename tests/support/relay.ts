/**
 * The relay the gateway sends its MDNs and DSNs through (`smtp.relay`), for tests: a real SMTP
 * server on loopback (smtp-server) keeping every message it is handed, envelope included.
 */
import { SMTPServer } from 'smtp-server';

export interface RelayedMail {
  /** The envelope's reverse-path ('' for the null one, as an MDN or DSN has). */
  from: string;
  to: string[];
  raw: Buffer;
  /** `raw` as UTF-8 text, for substring checks. */
  text: string;
}

export class CapturingRelay {
  readonly mails: RelayedMail[] = [];
  private readonly server = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], logger: false,
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        this.mails.push({ from, to: session.envelope.rcptTo.map((r) => r.address), raw, text: raw.toString('utf8') });
        callback();
      });
    },
  });

  /** Listens on a free loopback port and returns it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The mails relayed to `address`, once there are `count` of them or 10 s have passed. */
  async to(address: string, count = 1): Promise<RelayedMail[]> {
    const mine = (): RelayedMail[] => this.mails.filter((m) => m.to.includes(address));
    for (let i = 0; i < 400 && mine().length < count; i++) await new Promise((r) => setTimeout(r, 25));
    return mine();
  }
}
