/**
 * @file The tuning cache as a JSON file, for Node: `ADJOINT_TUNE_CACHE`, else
 * `$XDG_CACHE_HOME/adjoint/tune.json` or `~/.cache/adjoint/tune.json`. Kept apart from tune.ts so
 * the browser bundle of the runtime does not carry it (tune.ts imports it in Node only).
 */
import type { TuneCache, TuneEntry } from './tune.js';

async function nodeImport<T>(specifier: string): Promise<T> {
  return (await import(/* @vite-ignore */ specifier)) as T;
}

/** A cache in a JSON file (Node): read when first needed, rewritten (to a temporary file, renamed) on every change. */
export function fileTuneCache(path?: string): TuneCache {
  let file = path;
  let data: Record<string, TuneEntry> | undefined;
  const load = async (): Promise<Record<string, TuneEntry>> => {
    if (data) return data;
    const fs = await nodeImport<typeof import('node:fs')>('node:fs');
    file ??= await defaultCachePath();
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      data = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, TuneEntry>) : {};
    } catch {
      data = {};
    }
    return data;
  };
  return {
    get where() {
      return file ?? 'the default tuning cache file';
    },
    get: async (k) => {
      const e = (await load())[k];
      return e && typeof e.choice === 'string' ? e : undefined;
    },
    set: async (k, e) => {
      const d = await load();
      d[k] = e;
      const fs = await nodeImport<typeof import('node:fs')>('node:fs');
      const p = await nodeImport<typeof import('node:path')>('node:path');
      fs.mkdirSync(p.dirname(file!), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(d, null, 1) + '\n');
      fs.renameSync(tmp, file!);
    },
  };
}

/** `ADJOINT_TUNE_CACHE`, else `$XDG_CACHE_HOME/adjoint/tune.json`, else `~/.cache/adjoint/tune.json`. */
export async function defaultCachePath(): Promise<string> {
  const os = await nodeImport<typeof import('node:os')>('node:os');
  const p = await nodeImport<typeof import('node:path')>('node:path');
  const env = process.env;
  if (env.ADJOINT_TUNE_CACHE) return env.ADJOINT_TUNE_CACHE;
  return p.join(env.XDG_CACHE_HOME || p.join(os.homedir(), '.cache'), 'adjoint', 'tune.json');
}

