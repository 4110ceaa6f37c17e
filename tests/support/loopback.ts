/** Real HTTP servers on 127.0.0.1 with an ephemeral port, for tests of clients and routers. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Running { server: http.Server; origin: string }

/** Koa's callback settles its own promise (errors answered as 500): nothing to await here. */
export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export async function listen(handler: Handler): Promise<Running> {
  const server = http.createServer((req, res) => {
    void handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function close(r: Running): Promise<void> {
  r.server.closeAllConnections();
  await new Promise<void>((resolve) => r.server.close(() => resolve()));
}

/** A port nothing listens on yet (reserved, then released). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
