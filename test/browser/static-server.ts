/**
 * @file A small static file server for the browser tests (node:http, 127.0.0.1, a free port):
 * URL prefixes map to directories or to in-memory files. Paths are normalized and must stay
 * inside their directory; anything else is a 404. No caching, so every run sees fresh files.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
};

/** What a URL prefix (starting and ending with `/`) serves: a directory, or fixed files by name. */
export type Mount = { readonly dir: string } | { readonly files: ReadonlyMap<string, Uint8Array> };

export interface StaticServer {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** Every path requested, with its status, in order (for error messages). */
  readonly log: readonly string[];
  close(): Promise<void>;
}

async function lookup(mounts: ReadonlyMap<string, Mount>, path: string): Promise<Uint8Array | undefined> {
  for (const [prefix, mount] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length) || 'index.html';
    if ('files' in mount) return mount.files.get(rest);
    const file = normalize(join(mount.dir, rest));
    if (!file.startsWith(normalize(mount.dir + sep))) return undefined;
    try {
      return await readFile(file);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export async function serveStatic(mounts: ReadonlyMap<string, Mount>): Promise<StaticServer> {
  const log: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    void lookup(mounts, path).then((body) => {
      log.push(`${body ? 200 : 404} ${path}`);
      if (!body || req.method !== 'GET') {
        res.writeHead(body ? 405 : 404, { 'content-type': 'text/plain' }).end(body ? 'GET only' : `not found: ${path}`);
        return;
      }
      const type = TYPES[extname(path === '' || path.endsWith('/') ? 'index.html' : path)] ?? 'application/octet-stream';
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    log,
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}
