import { ConfigError } from '../../shared/errors/errors.ts';

/** The onnxruntime-node module: only its type is imported statically, so nothing loads it but the onnx backend. */
export type OnnxRuntime = typeof import('onnxruntime-node');

/** The version package.json pins; said in the install hint. */
export const ONNXRUNTIME_VERSION = '1.30.0';

const isMissing = (error: unknown) => {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes('onnxruntime-node')
  );
};

/**
 * Loads onnxruntime-node, an optional dependency, when the onnx backend is chosen; the
 * other backends and the Lambda bundles never load it. Missing, or failing to load its
 * native library, it is a ConfigError of one line that says how to install it.
 *
 * @param importRuntime swaps the import in tests. @default `import('onnxruntime-node')`
 */
export async function loadOnnxRuntime(
  importRuntime: () => Promise<OnnxRuntime> = () => import('onnxruntime-node'),
): Promise<OnnxRuntime> {
  try {
    return await importRuntime();
  } catch (error) {
    const hint = `npm install --save-optional --save-exact onnxruntime-node@${ONNXRUNTIME_VERSION} (package.json's allowScripts keeps npm 11.19+ from running its CUDA download; with an older npm, set ONNXRUNTIME_NODE_INSTALL=skip)`;
    if (isMissing(error))
      throw new ConfigError(`the onnx backend needs onnxruntime-node, which is not installed: ${hint}`, {
        cause: error,
      });
    const reason = String((error as Error)?.message ?? error).split('\n')[0];
    throw new ConfigError(
      `onnxruntime-node is installed but does not load (${reason}); reinstall it: ${hint}`,
      {
        cause: error,
      },
    );
  }
}
