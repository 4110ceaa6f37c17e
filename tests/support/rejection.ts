/** The PasserelleError a promise rejects with; fails the test when it resolves or rejects otherwise. */
import { PasserelleError, type ErrorCode } from '../../gateway/errors.js';

export async function rejection<E extends PasserelleError = PasserelleError>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E = PasserelleError as never): Promise<E> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof type) return err;
    throw err;
  }
  throw new Error(`expected a ${type.name}, the promise resolved`);
}

/** The catalogue code a synchronous call throws, or 'no error'; anything else than a PasserelleError fails the test. */
export function codeOf(f: () => unknown): ErrorCode | 'no error' {
  try {
    f();
    return 'no error';
  } catch (e) {
    if (e instanceof PasserelleError) return e.code;
    throw e;
  }
}
