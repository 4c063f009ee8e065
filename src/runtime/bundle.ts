/**
 * @file The artifact on disk: a directory with `manifest.json` and one `.wgsl` file per shader.
 * The manifest holds the model's programs (`train` when the model trains, and `forward`) with
 * each shader replaced by its file name. Pure functions over a file map, so the browser can load
 * a bundle from fetched files and Node from the file system.
 */
import { ArtifactError } from '../ir/errors.js';
import { ARTIFACT_FORMAT, ARTIFACT_VERSION, type Artifact } from './artifact.js';
import { validateProgram } from './manifest.js';

export { ArtifactError };

export interface Bundle {
  readonly name: string;
  readonly train?: Artifact;
  readonly forward: Artifact;
}

export const MANIFEST = 'manifest.json';

type ProgramManifest = Omit<Artifact, 'shaders'> & { readonly shaders: readonly string[] };

interface Manifest {
  readonly format: typeof ARTIFACT_FORMAT;
  readonly version: typeof ARTIFACT_VERSION;
  readonly name: string;
  readonly programs: { readonly train?: ProgramManifest; readonly forward: ProgramManifest };
}

/** The files of a bundle: `manifest.json` and `<program>-<i>.wgsl`. */
export function bundleFiles(b: Bundle): Map<string, string> {
  const files = new Map<string, string>();
  const prog = (key: 'train' | 'forward', a: Artifact): ProgramManifest => ({
    ...a,
    shaders: a.shaders.map((code, i) => {
      const f = `${key}-${i}.wgsl`;
      files.set(f, code);
      return f;
    }),
  });
  const m: Manifest = {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    name: b.name,
    programs: { ...(b.train ? { train: prog('train', b.train) } : {}), forward: prog('forward', b.forward) },
  };
  files.set(MANIFEST, JSON.stringify(m, null, 1) + '\n');
  return files;
}

/** Reads a bundle back from its files; `read(name)` returns a file's text or undefined. */
export function parseBundle(read: (file: string) => string | undefined, where = 'artifact'): Bundle {
  const text = read(MANIFEST);
  if (text === undefined) throw new ArtifactError(`${where}: no ${MANIFEST}`);
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new ArtifactError(`${where}/${MANIFEST}: invalid JSON (${(e as Error).message})`);
  }
  if (m?.format !== ARTIFACT_FORMAT) throw new ArtifactError(`${where}/${MANIFEST}: not an adjoint artifact (format ${JSON.stringify(m?.format)})`);
  if (m.version !== ARTIFACT_VERSION) throw new ArtifactError(`${where}/${MANIFEST}: artifact version ${m.version}, this runtime reads version ${ARTIFACT_VERSION}; recompile the model`);
  const prog = (raw: unknown, key: string): Artifact => {
    const p = validateProgram(raw, `${where}/${MANIFEST}: programs.${key}`);
    return {
    ...p,
    shaders: p.shaders.map((f) => {
      if (typeof f !== 'string' || !/^[a-z]+-\d+\.wgsl$/.test(f)) throw new ArtifactError(`${where}/${MANIFEST}: bad shader file name ${JSON.stringify(f)}`);
      const code = read(f);
      if (code === undefined) throw new ArtifactError(`${where}: missing shader file ${f}`);
      return code;
    }),
    };
  };
  if (!m.programs?.forward) throw new ArtifactError(`${where}/${MANIFEST}: no forward program`);
  return { name: m.name, forward: prog(m.programs.forward, 'forward'), ...(m.programs.train ? { train: prog(m.programs.train, 'train') } : {}) };
}
