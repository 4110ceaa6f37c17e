/**
 * The operator console (CONTRACT.md: an admin "may do everything, including the console"): a
 * static page and its script, holding no data. The browser asks for an admin token, keeps it for
 * the tab (sessionStorage) and calls the same authenticated API as any client — GET /messages,
 * GET /messages/{id}, GET /messages/{id}/mail, $replay, $release, /raw — so the console has no
 * privilege of its own. A strict Content-Security-Policy allows only these files and calls to
 * this origin; the script writes every value with textContent, never as HTML.
 */
import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import { packageFile } from '../util/package-root.js';
import type { AppState } from './state.js';

const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/console': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

export function consoleRouter(): Router<AppState> {
  const router = new Router<AppState>();
  for (const [path, { file, type }] of Object.entries(ASSETS)) {
    const body = readFileSync(packageFile('console', file));
    router.get(path, (ctx) => {
      ctx.set('Content-Security-Policy', CSP);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Referrer-Policy', 'no-referrer');
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = type;
      ctx.body = body;
    });
  }
  return router;
}
