/** What the authentication middleware puts on `ctx.state` for every router. */

export type Role = 'sender' | 'pta' | 'admin';

export interface ClientIdentity {
  id: string;
  role: Role;
  /** FINESS of a sender, identifier of a PTA's organization (matched against routedTo); none for admins. */
  organization?: string;
}

export interface AppState {
  /** Absent on anonymous routes (/health, /fhir/metadata, /fixtures). */
  client?: ClientIdentity;
  /** Request id, echoed in logs and the X-Request-Id header. */
  requestId: string;
  /** Set by the error handler, for the request log line. */
  errorCode?: string;
}
