/**
 * @file Named error classes of the compiler. Every error a user can cause names what is wrong and
 * where (a JSON path, a node in printer form); an error whose message starts with `internal:` is a
 * broken invariant of the compiler itself.
 */

/** Base class: every error the compiler raises on purpose is an AdjointError. */
export class AdjointError extends Error {
  override name = 'AdjointError';
}

/** The model file is not valid JSON or does not match the model format. */
export class ModelFormatError extends AdjointError {
  override name = 'ModelFormatError';
}

/** A shape or dtype rule was violated (wrong operand shapes, bad attributes). */
export class ShapeError extends AdjointError {
  override name = 'ShapeError';
}

/** The verifier found a malformed graph. */
export class VerifyError extends AdjointError {
  override name = 'VerifyError';
}

/** An op has no rule in some layer where it needs one. */
export class UnsupportedError extends AdjointError {
  override name = 'UnsupportedError';
}

/** A GPU or device problem: no adapter, a limit exceeded, a lost device. */
export class DeviceError extends AdjointError {
  override name = 'DeviceError';
}

/** An artifact (manifest or shaders) is malformed, of another version, or does not fit the device. */
export class ArtifactError extends AdjointError {
  override name = 'ArtifactError';
}

/** Throws an internal error: a broken invariant of the compiler, never the user's fault. */
export function internal(message: string): never {
  throw new AdjointError(`internal: ${message}`);
}

/** Exhaustiveness check for switches over a union. */
export function assertNever(x: never, what = 'value'): never {
  throw new AdjointError(`internal: unexpected ${what} ${JSON.stringify(x)}`);
}
